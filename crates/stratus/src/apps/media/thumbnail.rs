//! Thumbnails: decide the format by content, refuse bombs from the header alone, decode as
//! little as the largest thumbnail needs (JPEG: libjpeg-turbo's scaled IDCT, n/8 in the DCT
//! domain, through `stratus-jpeg`),
//! resize with SIMD (`fast_image_resize`, Lanczos3), turn upright by the EXIF orientation, and
//! encode JPEG or WebP from pixels alone, so no metadata (EXIF, GPS, XMP) survives.

use std::io::Cursor;
use std::sync::LazyLock;

use bytes::Bytes;
use tokio::sync::Semaphore;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder as _, ImageReader, RgbImage};

/// How large a picture may be, checked from its header before anything is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Width × height.
    pub max_pixels: u64,
    /// Memory one decode may take: the decoded pixels (or, for progressive JPEGs, their
    /// coefficients) and the RGB copy made of them.
    pub max_bytes: u64,
}

impl DecodeLimits {
    pub const DEFAULT: Self = Self { max_pixels: 100_000_000, max_bytes: 256 * 1024 * 1024 };
}
const JPEG_QUALITY: u8 = 82;
const WEBP_QUALITY: f32 = 80.0;

/// Formats accepted as photos, by their leading bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
}

impl SourceFormat {
    /// The extension a file of this format is stored under.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Gif => "gif",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Jpeg,
    Webp,
}

impl OutputFormat {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Some(Self::Jpeg),
            "webp" => Some(Self::Webp),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThumbnailError {
    #[error("the file is empty")]
    Empty,
    #[error("not a JPEG, PNG, WebP or GIF image")]
    NotAnImage,
    #[error("the image is {width}×{height}, more than {limit} pixels")]
    TooManyPixels { width: u64, height: u64, limit: u64 },
    #[error("the image is truncated or corrupt ({0})")]
    Corrupt(String),
    #[error("this kind of image is not supported ({0})")]
    Unsupported(String),
    #[error("decoding the image needs {needed} bytes of memory, more than the {limit} allowed")]
    TooMuchMemory { needed: u64, limit: u64 },
    #[error("the thumbnail cannot be encoded: {0}")]
    Encode(String),
}

impl From<stratus_jpeg::JpegError> for ThumbnailError {
    fn from(error: stratus_jpeg::JpegError) -> Self {
        match error {
            stratus_jpeg::JpegError::Corrupt(reason) => Self::Corrupt(reason),
            stratus_jpeg::JpegError::Unsupported(reason) => Self::Unsupported(reason),
            stratus_jpeg::JpegError::TooMuchMemory { needed, limit } => Self::TooMuchMemory { needed, limit },
        }
    }
}

/// What a photo is, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub format: SourceFormat,
    pub width: u32,
    pub height: u32,
}

/// One requested thumbnail and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub long_edge: u32,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

/// The upright size of the picture and its thumbnails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub width: u32,
    pub height: u32,
    pub thumbnails: Vec<Thumbnail>,
}

pub fn sniff(bytes: &[u8]) -> Result<SourceFormat, ThumbnailError> {
    if bytes.is_empty() {
        return Err(ThumbnailError::Empty);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Ok(SourceFormat::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok(SourceFormat::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Ok(SourceFormat::Webp)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Ok(SourceFormat::Gif)
    } else {
        Err(ThumbnailError::NotAnImage)
    }
}

/// The format and stored dimensions, from the header only; bombs stop here.
pub fn probe(bytes: &[u8], max_pixels: u64) -> Result<Probe, ThumbnailError> {
    let format = sniff(bytes)?;
    let (width, height) = match format {
        SourceFormat::Jpeg => {
            let header = stratus_jpeg::read_header(bytes)?;
            (header.width, header.height)
        }
        _ => reader(bytes, format, u64::MAX)?
            .into_dimensions()
            .map_err(|e| ThumbnailError::Corrupt(e.to_string()))?,
    };
    let (wide, high) = (u64::from(width), u64::from(height));
    if wide * high > max_pixels {
        return Err(ThumbnailError::TooManyPixels { width: wide, height: high, limit: max_pixels });
    }
    if width == 0 || height == 0 {
        return Err(ThumbnailError::Corrupt("the image has no pixels".into()));
    }
    Ok(Probe { format, width, height })
}

/// Decodes running at once in this process, whoever asks (the `thumbnail` function, the edge's
/// variants): one per core, so decoding memory stays within cores × `max_decode_bytes`.
static DECODE_SLOTS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get)));

/// [`render`] on the blocking pool once a decode slot is free. `Err` only if it panicked.
pub async fn render_queued(
    bytes: Bytes,
    long_edges: Vec<u32>,
    formats: Vec<OutputFormat>,
    limits: DecodeLimits,
) -> Result<Result<Rendered, ThumbnailError>, tokio::task::JoinError> {
    let _slot = DECODE_SLOTS.acquire().await;
    tokio::task::spawn_blocking(move || render(&bytes, &long_edges, &formats, limits)).await
}

/// Every thumbnail of `long_edges` × `formats` from one decode. Long edges larger than the
/// picture give the picture's own size: never upscaled.
pub fn render(
    bytes: &[u8],
    long_edges: &[u32],
    formats: &[OutputFormat],
    limits: DecodeLimits,
) -> Result<Rendered, ThumbnailError> {
    let probe = probe(bytes, limits.max_pixels)?;
    let largest = long_edges.iter().copied().max().unwrap_or(1).max(1);
    let Decoded { pixels: decoded, orientation, icc } = decode(bytes, probe, largest, limits.max_bytes)?;
    let to_srgb = icc.as_deref().and_then(srgb_transform);
    let upright = |(w, h): (u32, u32)| if swaps_axes(orientation) { (h, w) } else { (w, h) };
    let (width, height) = upright((probe.width, probe.height));
    let mut thumbnails = Vec::with_capacity(long_edges.len() * formats.len());
    for &long_edge in long_edges {
        let (stored_w, stored_h) = fit(probe.width, probe.height, long_edge);
        let mut resized = resize(&decoded, stored_w, stored_h)?;
        if let Some(transform) = &to_srgb {
            // After resizing: the same colours for a fraction of the pixels.
            transform.apply(&mut resized);
        }
        let mut image = DynamicImage::ImageRgb8(resized);
        image.apply_orientation(orientation);
        let image = image.into_rgb8();
        for &format in formats {
            let bytes = encode(&image, format)?;
            thumbnails.push(Thumbnail {
                long_edge,
                format,
                width: image.width(),
                height: image.height(),
                bytes,
            });
        }
    }
    Ok(Rendered { width, height, thumbnails })
}

/// The conversion from an embedded RGB profile to sRGB, so thumbnails (which carry no
/// profile) show the colours the photographer saw. Unreadable profiles are taken as sRGB.
fn srgb_transform(icc: &[u8]) -> Option<qcms::Transform> {
    if icc.get(16..20) != Some(b"RGB ".as_slice()) {
        return None;
    }
    // Precaching the output tables costs tens of milliseconds: once per process.
    static SRGB: std::sync::LazyLock<Box<qcms::Profile>> = std::sync::LazyLock::new(|| {
        let mut srgb = qcms::Profile::new_sRGB();
        srgb.precache_output_transform();
        srgb
    });
    let input = qcms::Profile::new_from_slice(icc, false)?;
    qcms::Transform::new(&input, &SRGB, qcms::DataType::RGB8, qcms::Intent::Perceptual)
}

/// `width` × `height` scaled so the long edge is `long_edge`, never up.
fn fit(width: u32, height: u32, long_edge: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= long_edge {
        return (width, height);
    }
    let scale =
        |side: u32| ((u64::from(side) * u64::from(long_edge) + u64::from(long) / 2) / u64::from(long)).max(1);
    (scale(width) as u32, scale(height) as u32)
}

fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

fn reader(
    bytes: &[u8],
    format: SourceFormat,
    max_bytes: u64,
) -> Result<ImageReader<Cursor<&[u8]>>, ThumbnailError> {
    let format = match format {
        SourceFormat::Jpeg => image::ImageFormat::Jpeg,
        SourceFormat::Png => image::ImageFormat::Png,
        SourceFormat::Webp => image::ImageFormat::WebP,
        SourceFormat::Gif => image::ImageFormat::Gif,
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_bytes);
    reader.limits(limits);
    Ok(reader)
}

/// What decoding yields: the stored (not yet upright) pixels as RGB, the orientation to apply
/// and the embedded colour profile, if any.
struct Decoded {
    pixels: RgbImage,
    orientation: Orientation,
    icc: Option<Vec<u8>>,
}

/// Decodes at least `long_edge` on the long side when the picture is that large, in at most
/// `max_bytes` of memory: what a decode needs is known from the header, so a picture that needs
/// more is refused before anything is allocated.
fn decode(bytes: &[u8], probe: Probe, long_edge: u32, max_bytes: u64) -> Result<Decoded, ThumbnailError> {
    let corrupt = |e: &dyn std::fmt::Display| ThumbnailError::Corrupt(e.to_string());
    match probe.format {
        SourceFormat::Jpeg => {
            let (width, height) = fit(probe.width, probe.height, long_edge);
            let jpeg = stratus_jpeg::decode(bytes, (width, height), max_bytes)?;
            let pixels = RgbImage::from_raw(jpeg.width, jpeg.height, jpeg.rgb)
                .ok_or_else(|| ThumbnailError::Corrupt("truncated pixel data".into()))?;
            let orientation = jpeg
                .exif
                .as_deref()
                .and_then(Orientation::from_exif_chunk)
                .unwrap_or(Orientation::NoTransforms);
            Ok(Decoded { pixels, orientation, icc: jpeg.icc })
        }
        format => {
            let mut decoder = reader(bytes, format, max_bytes)?.into_decoder().map_err(|e| corrupt(&e))?;
            // No scaled decoding here: the whole picture, then an RGB copy unless it is RGB.
            let (width, height) = decoder.dimensions();
            let copy = if decoder.color_type() == image::ColorType::Rgb8 { 0 } else { 3 };
            let needed = decoder.total_bytes().saturating_add(u64::from(width) * u64::from(height) * copy);
            if needed > max_bytes {
                return Err(ThumbnailError::TooMuchMemory { needed, limit: max_bytes });
            }
            let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
            let icc = decoder.icc_profile().ok().flatten();
            let image = DynamicImage::from_decoder(decoder).map_err(|e| corrupt(&e))?;
            Ok(Decoded { pixels: flatten(image), orientation, icc })
        }
    }
}

/// RGB on white: thumbnails are opaque (JPEG has no alpha).
fn flatten(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    let mut rgb = RgbImage::new(width, height);
    for (target, source) in rgb.pixels_mut().zip(rgba.pixels()) {
        let alpha = u16::from(source[3]);
        for channel in 0..3 {
            target[channel] = ((u16::from(source[channel]) * alpha + 255 * (255 - alpha) + 127) / 255) as u8;
        }
    }
    rgb
}

fn resize(source: &RgbImage, width: u32, height: u32) -> Result<RgbImage, ThumbnailError> {
    if source.dimensions() == (width, height) {
        return Ok(source.clone());
    }
    let failed = |e: &dyn std::fmt::Display| ThumbnailError::Encode(e.to_string());
    // Borrowed: the decoded picture is the largest buffer here and is never copied.
    let from = ImageRef::new(source.width(), source.height(), source.as_raw(), PixelType::U8x3)
        .map_err(|e| failed(&e))?;
    let mut to = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new().resize(&from, &mut to, &options).map_err(|e| failed(&e))?;
    RgbImage::from_raw(width, height, to.into_vec()).ok_or_else(|| ThumbnailError::Encode("resize".into()))
}

fn encode(image: &RgbImage, format: OutputFormat) -> Result<Vec<u8>, ThumbnailError> {
    let (width, height) = image.dimensions();
    match format {
        OutputFormat::Jpeg => {
            let mut bytes = Vec::new();
            let side =
                |v: u32| u16::try_from(v).map_err(|_| ThumbnailError::Encode("too large for JPEG".into()));
            jpeg_encoder::Encoder::new(&mut bytes, JPEG_QUALITY)
                .encode(image.as_raw(), side(width)?, side(height)?, jpeg_encoder::ColorType::Rgb)
                .map_err(|e| ThumbnailError::Encode(e.to_string()))?;
            Ok(bytes)
        }
        OutputFormat::Webp => {
            let encoded = webp::Encoder::from_rgb(image.as_raw(), width, height).encode(WEBP_QUALITY);
            Ok(encoded.to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use image::ImageEncoder as _;

    use super::*;

    #[test]
    fn long_edges_fit_without_upscaling() {
        assert_eq!(fit(4000, 3000, 1024), (1024, 768));
        assert_eq!(fit(3000, 4000, 256), (192, 256));
        assert_eq!(fit(200, 100, 256), (200, 100));
        assert_eq!(fit(10_000, 1, 256), (256, 1));
    }

    /// A JPEG of `image` carrying an EXIF orientation tag (big-endian TIFF, one IFD entry).
    fn jpeg_with_orientation(image: &RgbImage, orientation: u16) -> Vec<u8> {
        let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
        exif.extend_from_slice(&orientation.to_be_bytes());
        exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut bytes = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 95);
        encoder.add_app_segment(1, exif).unwrap();
        let (w, h) = (image.width() as u16, image.height() as u16);
        encoder.encode(image.as_raw(), w, h, jpeg_encoder::ColorType::Rgb).unwrap();
        bytes
    }

    /// Upright: 160×80, red top-left quarter, green top-right, blue bottom-left, white elsewhere.
    fn upright() -> RgbImage {
        RgbImage::from_fn(160, 80, |x, y| match (x < 80, y < 40) {
            (true, true) => image::Rgb([255, 0, 0]),
            (false, true) => image::Rgb([0, 255, 0]),
            (true, false) => image::Rgb([0, 0, 255]),
            (false, false) => image::Rgb([255, 255, 255]),
        })
    }

    /// A thumbnail's pixels, decoded at full size.
    fn pixels(bytes: &[u8]) -> RgbImage {
        let probe = probe(bytes, DecodeLimits::DEFAULT.max_pixels).unwrap();
        decode(bytes, probe, probe.width.max(probe.height), DecodeLimits::DEFAULT.max_bytes).unwrap().pixels
    }

    fn close(pixel: &image::Rgb<u8>, expected: [u8; 3]) -> bool {
        pixel.0.iter().zip(expected).all(|(&got, want)| got.abs_diff(want) < 40)
    }

    #[test]
    fn every_exif_orientation_comes_out_upright_and_without_metadata() {
        use image::DynamicImage;
        // How each orientation's picture is stored: the inverse of the turn that shows it.
        let inverse = |n: u8| {
            Orientation::from_exif(match n {
                6 => 8,
                8 => 6,
                other => other,
            })
            .unwrap()
        };
        for n in 1..=8u8 {
            let mut stored = DynamicImage::ImageRgb8(upright());
            stored.apply_orientation(inverse(n));
            let jpeg = jpeg_with_orientation(&stored.into_rgb8(), u16::from(n));
            let rendered =
                render(&jpeg, &[80], &[OutputFormat::Jpeg, OutputFormat::Webp], DecodeLimits::DEFAULT)
                    .unwrap();
            assert_eq!((rendered.width, rendered.height), (160, 80), "orientation {n}: upright size");
            for thumbnail in &rendered.thumbnails {
                let decoded = pixels(&thumbnail.bytes);
                assert_eq!(decoded.dimensions(), (80, 40), "orientation {n}, {:?}", thumbnail.format);
                let at = |x, y| decoded.get_pixel(x, y);
                assert!(
                    close(at(20, 10), [255, 0, 0]),
                    "orientation {n}: red top-left, got {:?}",
                    at(20, 10)
                );
                assert!(close(at(60, 10), [0, 255, 0]), "orientation {n}: green top-right");
                assert!(close(at(20, 30), [0, 0, 255]), "orientation {n}: blue bottom-left");
                let text = String::from_utf8_lossy(&thumbnail.bytes);
                assert!(
                    !text.contains("Exif") && !text.contains("EXIF"),
                    "orientation {n}: metadata stripped"
                );
            }
        }
    }

    /// A minimal ICC v2 RGB display profile (matrix + gamma 2.2 curves) with the given
    /// colorants in the D50 connection space.
    fn icc_profile(red: [f64; 3], green: [f64; 3], blue: [f64; 3]) -> Vec<u8> {
        let fixed = |v: f64| ((v * 65536.0).round() as i32).to_be_bytes();
        let xyz =
            |v: [f64; 3]| [b"XYZ \0\0\0\0".as_slice(), &fixed(v[0]), &fixed(v[1]), &fixed(v[2])].concat();
        let curve = [b"curv\0\0\0\0\0\0\0\x01\x02\x33\0\0".as_slice()].concat();
        let white = [0.9642, 1.0, 0.8249];
        let tags: [(&[u8; 4], Vec<u8>); 7] = [
            (b"rXYZ", xyz(red)),
            (b"gXYZ", xyz(green)),
            (b"bXYZ", xyz(blue)),
            (b"wtpt", xyz(white)),
            (b"rTRC", curve.clone()),
            (b"gTRC", curve.clone()),
            (b"bTRC", curve),
        ];
        let mut table = (tags.len() as u32).to_be_bytes().to_vec();
        let mut data = Vec::new();
        let start = 128 + 4 + 12 * tags.len();
        for (signature, bytes) in &tags {
            table.extend_from_slice(*signature);
            table.extend_from_slice(&((start + data.len()) as u32).to_be_bytes());
            table.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            data.extend_from_slice(bytes);
        }
        let size = (128 + table.len() + data.len()) as u32;
        let mut header = vec![0u8; 128];
        header[0..4].copy_from_slice(&size.to_be_bytes());
        header[8..12].copy_from_slice(&[2, 0x10, 0, 0]);
        header[12..16].copy_from_slice(b"mntr");
        header[16..20].copy_from_slice(b"RGB ");
        header[20..24].copy_from_slice(b"XYZ ");
        header[36..40].copy_from_slice(b"acsp");
        for (i, v) in white.iter().enumerate() {
            header[68 + 4 * i..72 + 4 * i].copy_from_slice(&fixed(*v));
        }
        [header, table, data].concat()
    }

    #[test]
    fn colours_of_an_embedded_profile_are_converted_to_srgb() {
        // sRGB's colorants, with red and green exchanged: stored red is meant as green.
        let (red, green, blue) =
            ([0.4361, 0.2225, 0.0139], [0.3851, 0.7169, 0.0971], [0.1431, 0.0606, 0.7141]);
        let red_image = RgbImage::from_pixel(64, 64, image::Rgb([255, 0, 0]));
        let encode = |profile: Option<Vec<u8>>| {
            let mut bytes = Vec::new();
            let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 95);
            if let Some(profile) = profile {
                encoder.add_icc_profile(&profile).unwrap();
            }
            encoder.encode(red_image.as_raw(), 64, 64, jpeg_encoder::ColorType::Rgb).unwrap();
            bytes
        };
        let centre = |jpeg: &[u8]| {
            let rendered = render(jpeg, &[32], &[OutputFormat::Jpeg], DecodeLimits::DEFAULT).unwrap();
            *pixels(&rendered.thumbnails[0].bytes).get_pixel(16, 16)
        };
        let swapped = centre(&encode(Some(icc_profile(green, red, blue))));
        assert!(close(&swapped, [0, 255, 0]), "converted to sRGB green: {swapped:?}");
        let srgb = centre(&encode(Some(icc_profile(red, green, blue))));
        assert!(close(&srgb, [255, 0, 0]), "an sRGB profile changes nothing: {srgb:?}");
        let untagged = centre(&encode(None));
        assert!(close(&untagged, [255, 0, 0]), "no profile is sRGB: {untagged:?}");
    }

    #[test]
    fn png_webp_and_the_first_frame_of_a_gif_are_thumbnailed_too() {
        let picture = upright();
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(picture.as_raw(), 160, 80, image::ExtendedColorType::Rgb8)
            .unwrap();
        let webp = webp::Encoder::from_rgb(picture.as_raw(), 160, 80).encode_lossless().to_vec();
        let mut gif = Vec::new();
        {
            let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
            let first = image::Frame::new(DynamicImage::ImageRgb8(picture.clone()).into_rgba8());
            let second =
                image::Frame::new(image::RgbaImage::from_pixel(160, 80, image::Rgba([0, 0, 0, 255])));
            encoder.encode_frames([first, second]).unwrap();
        }
        for (name, bytes) in [("png", png), ("webp", webp), ("gif", gif)] {
            let rendered = render(&bytes, &[80], &[OutputFormat::Jpeg], DecodeLimits::DEFAULT).unwrap();
            let thumbnail = pixels(&rendered.thumbnails[0].bytes);
            assert_eq!(thumbnail.dimensions(), (80, 40), "{name}");
            assert!(close(thumbnail.get_pixel(20, 10), [255, 0, 0]), "{name}: the first frame, upright");
            assert!(close(thumbnail.get_pixel(60, 30), [255, 255, 255]), "{name}");
        }
    }

    #[test]
    fn widths_and_formats_are_as_asked_and_never_upscaled() {
        let jpeg = jpeg_with_orientation(&upright(), 1);
        let rendered =
            render(&jpeg, &[64, 1024], &[OutputFormat::Jpeg, OutputFormat::Webp], DecodeLimits::DEFAULT)
                .unwrap();
        let summary: Vec<_> =
            rendered.thumbnails.iter().map(|t| (t.long_edge, t.format, t.width, t.height)).collect();
        assert_eq!(
            summary,
            [
                (64, OutputFormat::Jpeg, 64, 32),
                (64, OutputFormat::Webp, 64, 32),
                (1024, OutputFormat::Jpeg, 160, 80),
                (1024, OutputFormat::Webp, 160, 80),
            ]
        );
        assert!(rendered.thumbnails[0].bytes.starts_with(&[0xFF, 0xD8, 0xFF]));
        assert_eq!(sniff(&rendered.thumbnails[1].bytes), Ok(SourceFormat::Webp));
    }

    #[test]
    fn bombs_truncated_files_and_impostors_are_refused_with_a_reason() {
        // A PNG header declaring 50 000 × 50 000 pixels: refused before any pixel is decoded.
        let mut bomb = Vec::new();
        image::codecs::png::PngEncoder::new(&mut bomb)
            .write_image(&[0u8; 3], 1, 1, image::ExtendedColorType::Rgb8)
            .unwrap();
        bomb[16..20].copy_from_slice(&50_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&50_000u32.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        let started = std::time::Instant::now();
        let refused = render(&bomb, &[256], &[OutputFormat::Jpeg], DecodeLimits::DEFAULT);
        assert!(matches!(refused, Err(ThumbnailError::TooManyPixels { width: 50_000, .. })), "{refused:?}");
        assert!(started.elapsed() < std::time::Duration::from_millis(100));

        let jpeg = jpeg_with_orientation(&upright(), 1);
        let truncated = render(&jpeg[..jpeg.len() / 2], &[64], &[OutputFormat::Jpeg], DecodeLimits::DEFAULT);
        assert!(matches!(truncated, Err(ThumbnailError::Corrupt(_))), "{truncated:?}");
        let html =
            render(b"<!doctype html><title>x</title>", &[64], &[OutputFormat::Jpeg], DecodeLimits::DEFAULT);
        assert_eq!(html, Err(ThumbnailError::NotAnImage));
        assert_eq!(
            render(b"", &[64], &[OutputFormat::Jpeg], DecodeLimits::DEFAULT),
            Err(ThumbnailError::Empty)
        );
    }

    #[test]
    fn pictures_needing_more_memory_than_allowed_are_refused_before_decoding() {
        let png = |colour: image::ExtendedColorType, channels: usize| {
            let mut bytes = Vec::new();
            image::codecs::png::PngEncoder::new(&mut bytes)
                .write_image(&vec![0u8; 1000 * 1000 * channels], 1000, 1000, colour)
                .unwrap();
            bytes
        };
        let limits = |max_bytes: u64| DecodeLimits { max_bytes, ..DecodeLimits::DEFAULT };
        // RGBA: 4 bytes a pixel decoded, then 3 for the RGB copy.
        let rgba = png(image::ExtendedColorType::Rgba8, 4);
        assert_eq!(
            render(&rgba, &[64], &[OutputFormat::Jpeg], limits(6_999_999)),
            Err(ThumbnailError::TooMuchMemory { needed: 7_000_000, limit: 6_999_999 })
        );
        assert!(render(&rgba, &[64], &[OutputFormat::Jpeg], limits(7_000_000)).is_ok());
        // RGB needs no copy.
        let rgb = png(image::ExtendedColorType::Rgb8, 3);
        assert!(render(&rgb, &[64], &[OutputFormat::Jpeg], limits(3_000_000)).is_ok());
        // A progressive JPEG holds its coefficients: 2 bytes a pixel and component (4:2:0 here).
        let mut progressive = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut progressive, 80);
        encoder.set_progressive(true);
        encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
        encoder.encode(&vec![0u8; 1024 * 1024 * 3], 1024, 1024, jpeg_encoder::ColorType::Rgb).unwrap();
        let needed = 1024 * 1024 * 3;
        assert_eq!(
            render(&progressive, &[64], &[OutputFormat::Jpeg], limits(needed - 1)),
            Err(ThumbnailError::TooMuchMemory { needed, limit: needed - 1 })
        );
        assert!(render(&progressive, &[64], &[OutputFormat::Jpeg], limits(needed)).is_ok());
    }

    #[test]
    fn formats_are_decided_by_content() {
        assert_eq!(sniff(b""), Err(ThumbnailError::Empty));
        assert_eq!(sniff(b"<!doctype html><html>"), Err(ThumbnailError::NotAnImage));
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Ok(SourceFormat::Jpeg));
        assert_eq!(sniff(b"GIF89a...."), Ok(SourceFormat::Gif));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Ok(SourceFormat::Webp));
    }
}
