//! `stratus photos upload` and `stratus thumbnail`: photos through the same path as the API.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::{open_platform, progress_bar};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum PhotosCommand {
    /// Upload photos and make their thumbnails; prints each photo's id and final state. A
    /// running server's `thumbnail` function sees the same uploads and repeats the work
    /// harmlessly.
    Upload {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Recorded as the uploader.
        #[arg(long, default_value = "operator")]
        uploader: String,
    },
}

#[derive(Debug, Args)]
pub struct ThumbnailArgs {
    /// A JPEG, PNG, WebP or GIF file.
    input: PathBuf,
    /// Where to write the thumbnail; its extension (.jpg, .jpeg, .webp) gives the format.
    output: PathBuf,
    /// Long edge in pixels (a smaller photo keeps its size).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65_535))]
    width: u32,
    /// The format, whatever the output is named.
    #[arg(long, value_enum)]
    format: Option<ThumbnailFormat>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ThumbnailFormat {
    Jpeg,
    Webp,
}

pub(super) async fn upload_photos(files: &[PathBuf], uploader: &str, config: &Config) -> anyhow::Result<()> {
    use crate::apps::media::Media;
    use crate::apps::media::thumbnailer::Thumbnailer;
    let platform = open_platform(config)?;
    let media = Media::open(&platform, &config.media).await?;
    let thumbnailer = Thumbnailer::new(Arc::clone(&media.bucket), media.photos.clone(), &config.media);
    let watched = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = (files.len() > 1 && watched).then(|| progress_bar(files.len(), "photos"));
    let mut failures = 0;
    for file in files {
        let outcome: anyhow::Result<String> = async {
            let opened = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("cannot open {}", file.display()))?;
            let chunks = tokio_util::io::ReaderStream::with_capacity(opened, 256 * 1024);
            let uploaded =
                media.upload(&Media::new_id(), chunks, uploader, config.media.max_upload_bytes).await?;
            // Not the last attempt: the upload's event is still delivered to the `thumbnail`
            // function of a server, whose retries decide a photo's fate after a storage error.
            thumbnailer.handle(&uploaded.key, false).await?;
            let photo = media.photos.get(&uploaded.id).await?.context("the photo item vanished")?;
            match (photo.state, photo.width, photo.height) {
                (crate::apps::media::photos::PhotoState::Ready, Some(w), Some(h)) => {
                    Ok(format!("{} ready {w}x{h}, {} thumbnails", photo.id, photo.thumbnails.len()))
                }
                (state, _, _) => {
                    anyhow::bail!("{} {}: {}", photo.id, state.as_str(), photo.reason.unwrap_or_default())
                }
            }
        }
        .await;
        let line = match outcome {
            Ok(line) => format!("{}  {line}", file.display()),
            Err(error) => {
                failures += 1;
                format!("{}  {error:#}", file.display())
            }
        };
        match &bar {
            Some(bar) => {
                bar.println(line);
                bar.inc(1);
            }
            None => println!("{line}"),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    anyhow::ensure!(failures == 0, "{failures} of {} photos were not made ready", files.len());
    Ok(())
}

pub(super) fn thumbnail(args: &ThumbnailArgs, config: &Config) -> anyhow::Result<()> {
    use crate::apps::media::thumbnail::{OutputFormat, render};
    let format = match args.format {
        Some(ThumbnailFormat::Jpeg) => OutputFormat::Jpeg,
        Some(ThumbnailFormat::Webp) => OutputFormat::Webp,
        None => args
            .output
            .extension()
            .and_then(|extension| OutputFormat::parse(&extension.to_string_lossy()))
            .with_context(|| {
                format!(
                    "cannot tell a format from {}: name it .jpg or .webp, or pass --format",
                    args.output.display()
                )
            })?,
    };
    let bytes =
        std::fs::read(&args.input).with_context(|| format!("cannot read {}", args.input.display()))?;
    let rendered = render(&bytes, &[args.width], &[format], config.media.decode_limits())
        .with_context(|| format!("{}", args.input.display()))?;
    let thumbnail = rendered.thumbnails.first().context("no thumbnail was produced")?;
    std::fs::write(&args.output, &thumbnail.bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "{} {}x{} ({} bytes)",
        args.output.display(),
        thumbnail.width,
        thumbnail.height,
        thumbnail.bytes.len()
    );
    Ok(())
}
