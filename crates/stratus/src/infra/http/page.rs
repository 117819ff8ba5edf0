//! Small HTML pages for browser routes (the edge's errors, the subscribe form's answers,
//! unsubscribe confirmations): what a person sees instead of a problem document.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A page with a heading and one paragraph, escaped, never cached downstream.
pub fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let (title, message) = (escape(title), escape(message));
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head>\n<body><h1>{title}</h1><p>{message}</p><p><a href=\"/\">Home</a></p></body></html>\n"
    );
    let headers = [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")];
    (status, headers, Body::from(html)).into_response()
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}
