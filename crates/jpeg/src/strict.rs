//! The error manager libjpeg reports through. `error_exit` must not return, so it unwinds with
//! a [`Failure`] that [`catch`] turns back into an error (`mozjpeg-sys` builds libjpeg with
//! `-fexceptions`, and every callback is `extern "C-unwind"`, so unwinding through its frames is
//! defined). Warnings go through `emit_message`, where libjpeg would shrug off a truncated file or
//! a bad Huffman code and fill the rest with grey; those fail here too.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};
use std::panic::{self, AssertUnwindSafe};

use mozjpeg_sys::{
    JERR_ARITH_NOTIMPL, JERR_BAD_PRECISION, JERR_NOT_COMPILED, JERR_NOTIMPL, JWRN_HIT_MARKER,
    JWRN_HUFF_BAD_CODE, JWRN_JPEG_EOF, JWRN_MUST_RESYNC, jpeg_common_struct, jpeg_error_mgr, jpeg_std_error,
};

use crate::JpegError;

/// libjpeg's own bound on a formatted message (`JMSG_LENGTH_MAX` in jpeglib.h).
const MESSAGE_LENGTH: usize = 200;

/// The payload this module unwinds with, so [`catch`] can tell it from a panic.
struct Failure {
    message: String,
    /// A well-formed file using what this build of libjpeg leaves out (arithmetic coding,
    /// 12-bit samples), as opposed to a damaged one.
    unsupported: bool,
}

/// Runs `work`, turning libjpeg's failures into [`JpegError::Corrupt`]. Other panics go on.
pub(crate) fn catch<T>(work: impl FnOnce() -> Result<T, JpegError>) -> Result<T, JpegError> {
    // Unwind-safe in fact: what libjpeg was working on (the `Decompress` inside `work`) is dropped
    // while unwinding, and nothing of it is looked at afterwards.
    match panic::catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => match payload.downcast::<Failure>() {
            Ok(failure) if failure.unsupported => Err(JpegError::Unsupported(failure.message)),
            Ok(failure) => Err(JpegError::Corrupt(failure.message)),
            Err(other) => panic::resume_unwind(other),
        },
    }
}

/// libjpeg's standard error manager with both callbacks replaced.
pub(crate) fn error_manager() -> jpeg_error_mgr {
    // SAFETY: the struct is plain data (integers, nullable pointers, optional function pointers):
    // all-zero is a valid value, and `jpeg_std_error` then sets every field.
    let mut manager: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    // SAFETY: `manager` is a valid, exclusively borrowed error manager for the whole call.
    unsafe { jpeg_std_error(&mut manager) };
    manager.error_exit = Some(fail);
    manager.emit_message = Some(emit);
    manager
}

extern "C-unwind" fn fail(cinfo: &mut jpeg_common_struct) {
    let code = error_manager_of(cinfo).msg_code;
    let unsupported =
        [JERR_ARITH_NOTIMPL, JERR_BAD_PRECISION, JERR_NOT_COMPILED, JERR_NOTIMPL].contains(&code);
    panic::resume_unwind(Box::new(Failure { message: message(cinfo), unsupported }));
}

/// Levels below zero are warnings; of those, the ones that mean pixels are missing or wrong
/// fail. The rest (an unknown JFIF revision, padding before a marker, a bad ICC chunk) change
/// nothing a thumbnail shows.
extern "C-unwind" fn emit(cinfo: &mut jpeg_common_struct, level: c_int) {
    if level >= 0 {
        return;
    }
    let code = error_manager_of(cinfo).msg_code;
    if [JWRN_JPEG_EOF, JWRN_HUFF_BAD_CODE, JWRN_HIT_MARKER, JWRN_MUST_RESYNC].contains(&code) {
        fail(cinfo);
    } else {
        tracing::debug!(warning = %message(cinfo), "libjpeg warning, pixels unaffected");
    }
}

fn error_manager_of(cinfo: &jpeg_common_struct) -> &jpeg_error_mgr {
    // SAFETY: libjpeg only calls back with the `cinfo` whose `err` points at the manager
    // `Decompress` owns, which outlives every call.
    unsafe { &*cinfo.err }
}

/// libjpeg's text of the current message, parameters filled in.
fn message(cinfo: &mut jpeg_common_struct) -> String {
    let Some(format) = error_manager_of(cinfo).format_message else {
        return format!("libjpeg message {}", error_manager_of(cinfo).msg_code);
    };
    // `mozjpeg-sys` declares the buffer as `&[u8; 80]`, but libjpeg writes up to
    // `JMSG_LENGTH_MAX` bytes into it: call it as what it is, a pointer to a writable buffer.
    type Declared = unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &[u8; 80]);
    type Writes = unsafe extern "C-unwind" fn(&mut jpeg_common_struct, *mut c_char);
    // SAFETY: both are the same C function type: a pointer to the common struct and a pointer to
    // a byte buffer; only the Rust view of the buffer differs.
    let format = unsafe { std::mem::transmute::<Declared, Writes>(format) };
    let mut buffer = [0u8; MESSAGE_LENGTH];
    // SAFETY: `buffer` holds the `JMSG_LENGTH_MAX` bytes libjpeg formats into, NUL included.
    unsafe { format(cinfo, buffer.as_mut_ptr().cast::<c_char>()) };
    CStr::from_bytes_until_nul(&buffer)
        .map_or_else(|_| "unreadable libjpeg message".into(), |text| text.to_string_lossy().into_owned())
}
