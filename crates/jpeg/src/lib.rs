//! JPEG decoding over libjpeg-turbo (the decoder `mozjpeg-sys` builds from source into the
//! binary): the fastest Huffman decoding there is, and scaling in the DCT domain by any n/8, so
//! a thumbnail computes only the pixels it shows.
//!
//! Stricter than libjpeg: where it warns and fills the rest of the picture with grey (a
//! truncated file, a bad Huffman code), this fails with the reason; and a decode that would have
//! to hold more coefficients in memory than allowed is refused before it starts.

mod strict;

use mozjpeg::{ColorSpace, CompInfo, Decompress, Marker};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    /// libjpeg's own words: "Premature end of JPEG file", "Not a JPEG file: …".
    #[error("{0}")]
    Corrupt(String),
    /// Well-formed, but a kind of JPEG this decoder leaves out: "Unsupported JPEG data precision
    /// 12", arithmetic coding.
    #[error("{0}")]
    Unsupported(String),
    #[error("decoding needs {needed} bytes of memory, more than the {limit} allowed")]
    TooMuchMemory { needed: u64, limit: u64 },
}

impl From<std::io::Error> for JpegError {
    fn from(error: std::io::Error) -> Self {
        Self::Corrupt(error.to_string())
    }
}

/// What the frame header declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub width: u32,
    pub height: u32,
}

/// A decoded picture: RGB rows top to bottom, and what its markers say about showing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    /// The TIFF structure of the APP1 `Exif` segment (where the orientation is).
    pub exif: Option<Vec<u8>>,
    /// The embedded ICC profile, put back together from its APP2 chunks.
    pub icc: Option<Vec<u8>>,
}

/// Reads the headers only: nothing of the image data is decoded.
pub fn read_header(bytes: &[u8]) -> Result<Header, JpegError> {
    strict::catch(|| {
        let jpeg = open(bytes, &[])?;
        Ok(Header { width: side(jpeg.width()), height: side(jpeg.height()) })
    })
}

/// Decodes at the smallest scale n/8 whose output still covers `at_least` (width, height); at
/// full size when the picture is not that large. Refuses a decode that would have to buffer
/// more than `memory_limit` bytes of coefficients (progressive and multi-scan files).
pub fn decode(bytes: &[u8], at_least: (u32, u32), memory_limit: u64) -> Result<Decoded, JpegError> {
    const MARKERS: &[Marker] = &[Marker::APP(1), Marker::APP(2)];
    strict::catch(|| {
        let mut jpeg = open(bytes, MARKERS)?;
        if buffers_whole_image(bytes) {
            let needed = coefficient_bytes(jpeg.components());
            if needed > memory_limit {
                return Err(JpegError::TooMuchMemory { needed, limit: memory_limit });
            }
        }
        let exif = exif(&jpeg);
        let icc = icc_profile(&jpeg);
        jpeg.scale(eighths(jpeg.size(), at_least));
        let cmyk = matches!(jpeg.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK);
        let (width, height, rgb) = if cmyk {
            let mut started = jpeg.to_colorspace(ColorSpace::JCS_CMYK)?;
            let cmyk = started.read_scanlines::<u8>()?;
            (started.width(), started.height(), rgb_of_adobe_cmyk(&cmyk))
        } else {
            // libjpeg turns greyscale into RGB itself.
            let mut started = jpeg.rgb()?;
            let rgb = started.read_scanlines::<u8>()?;
            (started.width(), started.height(), rgb)
        };
        if rgb.len() != width * height * 3 {
            return Err(JpegError::Corrupt("fewer rows than the header declares".into()));
        }
        Ok(Decoded { width: side(width), height: side(height), rgb, exif, icc })
    })
}

fn open<'bytes>(
    bytes: &'bytes [u8],
    markers: &'static [Marker],
) -> Result<Decompress<&'bytes [u8]>, JpegError> {
    Ok(Decompress::with_err(strict::error_manager()).with_markers(markers).from_mem(bytes)?)
}

/// JPEG sides are 16-bit, so they always fit.
fn side(length: usize) -> u32 {
    u32::try_from(length).unwrap_or(u32::MAX)
}

/// The smallest n in 1..=8 for which libjpeg's output, ⌈side × n / 8⌉, covers `at_least`.
fn eighths((width, height): (usize, usize), (at_least_w, at_least_h): (u32, u32)) -> u8 {
    let scaled = |length: usize, n: u8| (length * usize::from(n)).div_ceil(8);
    (1..=8)
        .find(|&n| scaled(width, n) >= at_least_w as usize && scaled(height, n) >= at_least_h as usize)
        .unwrap_or(8)
}

/// Whether libjpeg must hold every coefficient of the picture before it can produce a row:
/// progressive files, and sequential ones whose first scan lacks a component. Read from the
/// frame (SOFn) and first scan (SOS) headers, which libjpeg has already found well-formed.
fn buffers_whole_image(bytes: &[u8]) -> bool {
    let mut at = 2;
    let mut components = None;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return true;
        }
        let marker = bytes[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let body = &bytes[(at + 4).min(bytes.len())..(at + 2 + length).min(bytes.len())];
        match marker {
            0xC2 | 0xC6 | 0xCA | 0xCE => return true,
            0xC0 | 0xC1 | 0xC3 | 0xC5 | 0xC7 | 0xC9 | 0xCB | 0xCD | 0xCF => components = body.get(5).copied(),
            0xDA => return body.first().copied() < components,
            _ => {}
        }
        at += 2 + length;
    }
    true
}

/// What libjpeg allocates to buffer every coefficient: a 64 × 2-byte block per 8 × 8 pixels of
/// each component, rounded up to whole MCUs.
fn coefficient_bytes(components: &[CompInfo]) -> u64 {
    let round_up =
        |blocks: u32, factor: i32| u64::from(blocks.div_ceil(factor.max(1) as u32) * factor.max(1) as u32);
    components
        .iter()
        .map(|c| {
            round_up(c.width_in_blocks, c.h_samp_factor) * round_up(c.height_in_blocks, c.v_samp_factor) * 128
        })
        .sum()
}

fn exif(jpeg: &Decompress<&[u8]>) -> Option<Vec<u8>> {
    jpeg.markers()
        .filter(|segment| segment.marker == Marker::APP(1))
        .find_map(|segment| segment.data.strip_prefix(b"Exif\0\0"))
        .map(<[u8]>::to_vec)
}

/// ICC profiles longer than a segment are split over APP2 segments numbered 1..=count; a set
/// with a chunk missing, repeated or disagreeing on the count is ignored, as browsers do.
fn icc_profile(jpeg: &Decompress<&[u8]>) -> Option<Vec<u8>> {
    let mut chunks: Vec<(u8, u8, &[u8])> = jpeg
        .markers()
        .filter(|segment| segment.marker == Marker::APP(2))
        .filter_map(|segment| {
            let ([number, count], data) =
                segment.data.strip_prefix(b"ICC_PROFILE\0")?.split_first_chunk::<2>()?;
            Some((*number, *count, data))
        })
        .collect();
    chunks.sort_by_key(|&(number, ..)| number);
    let count = chunks.first()?.1;
    let complete = chunks.len() == usize::from(count)
        && chunks.iter().zip(1..).all(|(&(number, total, _), expected)| number == expected && total == count);
    complete.then(|| chunks.iter().flat_map(|&(.., data)| data).copied().collect())
}

/// Adobe writes CMYK inverted (255 = no ink): R = C × K / 255 and so on.
fn rgb_of_adobe_cmyk(cmyk: &[u8]) -> Vec<u8> {
    let ink = |channel: u8, k: u8| ((u16::from(channel) * u16::from(k) + 127) / 255) as u8;
    cmyk.chunks_exact(4).flat_map(|p| [ink(p[0], p[3]), ink(p[1], p[3]), ink(p[2], p[3])]).collect()
}

#[cfg(test)]
mod tests;
