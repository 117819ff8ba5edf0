//! Thumbnailing memory and throughput: every configured thumbnail (256 and 1024 px, JPEG and
//! WebP) of one photo, four photos at a time, reporting the process's peak resident memory.
//!
//! `cargo bench -p stratus --bench media -- PHOTO.jpg` (bench/thumbnails.sh passes a real
//! 12 MP photograph).

use std::time::Instant;

use stratus::apps::media::thumbnail::{DecodeLimits, OutputFormat, render};

const AT_A_TIME: usize = 4;
const ROUNDS: usize = 3;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn peak_resident_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn main() {
    let Some(path) = std::env::args().skip(1).find(|arg| !arg.starts_with("--")) else {
        eprintln!("usage: cargo bench -p stratus --bench media -- PHOTO.jpg");
        return;
    };
    let photo = std::fs::read(&path).expect("read the photo");
    let before = peak_resident_mb();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        std::thread::scope(|scope| {
            for _ in 0..AT_A_TIME {
                scope.spawn(|| {
                    let rendered = render(
                        &photo,
                        &[256, 1024],
                        &[OutputFormat::Jpeg, OutputFormat::Webp],
                        DecodeLimits::DEFAULT,
                    )
                    .expect("render");
                    assert_eq!(rendered.thumbnails.len(), 4);
                });
            }
        });
    }
    let elapsed = started.elapsed();
    let photos = ROUNDS * AT_A_TIME;
    println!("{photos} photos ({} bytes each), {AT_A_TIME} at a time, 4 thumbnails each", photo.len());
    println!(
        "  {:.1} photos/s, {:.0} ms per photo per core-pair",
        photos as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / photos as f64
    );
    println!("  peak resident memory: {:.0} MB (before: {before:.0} MB; goal <= 200 MB)", peak_resident_mb());
}
