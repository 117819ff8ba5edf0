use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

use super::*;

const UNLIMITED: u64 = u64::MAX;

/// A `width` × `height` JPEG of a horizontal blue→red ramp over a vertical green one.
fn ramp(width: u16, height: u16, progressive: bool, segments: &[(u8, &[u8])]) -> Vec<u8> {
    let mut pixels = Vec::with_capacity(usize::from(width) * usize::from(height) * 3);
    for y in 0..height {
        for x in 0..width {
            let across = (u32::from(x) * 255 / u32::from(width.max(2) - 1)) as u8;
            let down = (u32::from(y) * 255 / u32::from(height.max(2) - 1)) as u8;
            pixels.extend([across, down, 255 - across]);
        }
    }
    let mut bytes = Vec::new();
    let mut encoder = Encoder::new(&mut bytes, 90);
    encoder.set_progressive(progressive);
    encoder.set_sampling_factor(SamplingFactor::F_2_2);
    for &(number, data) in segments {
        encoder.add_app_segment(number, data.to_vec()).expect("segment");
    }
    encoder.encode(&pixels, width, height, ColorType::Rgb).expect("encode");
    bytes
}

#[test]
fn decodes_at_the_smallest_eighth_that_covers_the_request() {
    let jpeg = ramp(800, 600, false, &[]);
    assert_eq!(read_header(&jpeg), Ok(Header { width: 800, height: 600 }));
    for (at_least, expected) in [
        ((100, 75), (100, 75)),
        ((101, 10), (200, 150)),
        ((256, 192), (300, 225)),
        ((800, 600), (800, 600)),
        ((5000, 1), (800, 600)),
    ] {
        let decoded = decode(&jpeg, at_least, UNLIMITED).expect("decode");
        assert_eq!((decoded.width, decoded.height), expected, "asked for at least {at_least:?}");
        assert_eq!(decoded.rgb.len(), expected.0 as usize * expected.1 as usize * 3);
        // The corners keep their colours at every scale: the left edge blue, the right red.
        let left = &decoded.rgb[..3];
        let right = &decoded.rgb[(expected.0 as usize - 1) * 3..expected.0 as usize * 3];
        assert!(left[0] < 55 && left[2] > 200, "left {left:?}");
        assert!(right[0] > 200 && right[2] < 55, "right {right:?}");
    }
}

#[test]
fn a_truncated_file_fails_instead_of_coming_out_grey() {
    let jpeg = ramp(640, 480, false, &[]);
    for cut in [jpeg.len() / 2, jpeg.len() - 200] {
        let error = decode(&jpeg[..cut], (640, 480), UNLIMITED).expect_err("truncated");
        assert_eq!(error, JpegError::Corrupt("Premature end of JPEG file".into()), "cut at {cut}");
    }
    let progressive = ramp(640, 480, true, &[]);
    let error =
        decode(&progressive[..progressive.len() * 2 / 3], (80, 60), UNLIMITED).expect_err("truncated");
    assert!(matches!(error, JpegError::Corrupt(_)), "{error:?}");
}

#[test]
fn garbage_in_the_entropy_data_fails_with_libjpegs_reason() {
    let mut jpeg = ramp(640, 480, false, &[]);
    let middle = jpeg.len() / 2;
    // 0xFF 0xD0..: a marker where none can be, as a corrupted byte run would produce.
    jpeg[middle..middle + 64]
        .iter_mut()
        .enumerate()
        .for_each(|(i, byte)| *byte = if i % 2 == 0 { 0xFF } else { 0xC0 });
    let error = decode(&jpeg, (640, 480), UNLIMITED).expect_err("corrupt");
    let JpegError::Corrupt(reason) = error else { panic!("{error:?}") };
    assert!(!reason.is_empty());
}

#[test]
fn well_formed_kinds_this_build_leaves_out_are_unsupported_not_corrupt() {
    let mut twelve_bit = ramp(64, 48, false, &[]);
    let frame = twelve_bit.windows(2).position(|pair| pair == [0xFF, 0xC0]).expect("SOF0");
    twelve_bit[frame + 4] = 12; // sample precision
    assert_eq!(
        decode(&twelve_bit, (8, 6), UNLIMITED),
        Err(JpegError::Unsupported("Unsupported JPEG data precision 12".into()))
    );
}

#[test]
fn headers_that_are_no_jpeg_fail_with_a_reason() {
    for bytes in [&b""[..], b"<html></html>", &[0xFF, 0xD8, 0xFF]] {
        let error = read_header(bytes).expect_err("not a JPEG");
        assert!(matches!(&error, JpegError::Corrupt(reason) if !reason.is_empty()), "{error:?}");
    }
}

#[test]
fn progressive_files_are_refused_when_their_coefficients_exceed_the_limit() {
    let progressive = ramp(1024, 768, true, &[]);
    let sequential = ramp(1024, 768, false, &[]);
    // 4:2:0 at 1024 × 768: 128 × 96 luma blocks and two 64 × 48 chroma planes, 128 bytes each.
    let needed = (128 * 96 + 2 * 64 * 48) * 128;
    assert_eq!(
        decode(&progressive, (128, 96), needed - 1),
        Err(JpegError::TooMuchMemory { needed, limit: needed - 1 })
    );
    assert!(decode(&progressive, (128, 96), needed).is_ok());
    // A sequential file streams: it needs a row of blocks, not the whole picture.
    assert!(decode(&sequential, (128, 96), 1).is_ok());
}

#[test]
fn exif_and_a_chunked_icc_profile_come_back_whole() {
    let exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\0";
    let profile: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    let mut segments: Vec<(u8, Vec<u8>)> = vec![(1, exif.to_vec())];
    let chunks: Vec<&[u8]> = profile.chunks(60_000).collect();
    for (number, chunk) in chunks.iter().enumerate() {
        let mut data = b"ICC_PROFILE\0".to_vec();
        data.extend([number as u8 + 1, chunks.len() as u8]);
        data.extend_from_slice(chunk);
        segments.push((2, data));
    }
    // Out of order on purpose: the numbers, not the order, put the profile together.
    segments.swap(1, 3);
    let segments: Vec<(u8, &[u8])> = segments.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    let decoded = decode(&ramp(64, 48, false, &segments), (8, 6), UNLIMITED).expect("decode");
    assert_eq!(decoded.exif.as_deref(), Some(&exif[6..]));
    assert_eq!(decoded.icc, Some(profile));

    let incomplete: Vec<(u8, &[u8])> =
        segments.iter().copied().filter(|(_, d)| d.get(12) != Some(&2)).collect();
    assert_eq!(decode(&ramp(64, 48, false, &incomplete), (8, 6), UNLIMITED).expect("decode").icc, None);
}

#[test]
fn greyscale_and_adobe_cmyk_come_out_as_rgb() {
    let mut grey = Vec::new();
    Encoder::new(&mut grey, 90).encode(&[100u8; 16 * 16], 16, 16, ColorType::Luma).expect("encode");
    let decoded = decode(&grey, (16, 16), UNLIMITED).expect("decode");
    assert!(decoded.rgb.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2] && p[0].abs_diff(100) <= 2));

    // No cyan, full magenta and yellow, no black → red (jpeg-encoder stores it inverted, as Adobe).
    let mut cmyk = Vec::new();
    Encoder::new(&mut cmyk, 95)
        .encode(&[0, 255, 255, 0].repeat(16 * 16), 16, 16, ColorType::Cmyk)
        .expect("encode");
    let decoded = decode(&cmyk, (16, 16), UNLIMITED).expect("decode");
    assert!(
        decoded.rgb.chunks_exact(3).all(|p| p[0] > 240 && p[1] < 15 && p[2] < 15),
        "{:?}",
        &decoded.rgb[..3]
    );
}

#[test]
fn failures_unwind_independently_on_many_threads_at_once() {
    let good = ramp(320, 240, false, &[]);
    let cut = good[..good.len() / 2].to_vec();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..25 {
                    assert_eq!(
                        decode(&cut, (40, 30), UNLIMITED),
                        Err(JpegError::Corrupt("Premature end of JPEG file".into()))
                    );
                    assert_eq!(decode(&good, (40, 30), UNLIMITED).expect("decode").width, 40);
                }
            });
        }
    });
}

#[test]
fn only_libjpegs_failures_become_errors_other_panics_go_on() {
    let bug = std::panic::catch_unwind(|| crate::strict::catch::<()>(|| panic!("a bug, not a bad file")));
    let payload = bug.expect_err("the panic goes on");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"a bug, not a bad file"));
}
