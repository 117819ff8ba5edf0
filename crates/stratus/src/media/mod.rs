//! The blog's photos: uploads to the media bucket, the `thumbnail` function that renders their
//! thumbnails, and the photo items that record each one's state.

pub mod thumbnail;
