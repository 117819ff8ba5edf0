//! The emails the pool sends (verification and reset codes), rendered from templates with a
//! text and an HTML part.

use minijinja::{Environment, context};

use super::IdentityError;
use super::model::CodePurpose;
use crate::ports::mail::Email;

pub(crate) struct CodeEmail<'a> {
    pub idempotency_key: String,
    pub to: &'a str,
    pub username: &'a str,
    pub code: &'a str,
    pub pool_name: &'a str,
    pub purpose: CodePurpose,
}

fn environment() -> Environment<'static> {
    crate::ports::mail::templates::environment(&[
        ("code.txt", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/email/code.txt"))),
        ("code.html", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/email/code.html"))),
    ])
}

pub(crate) fn render(email: &CodeEmail<'_>) -> Result<Email, IdentityError> {
    let (subject, intro, valid_for) = match email.purpose {
        CodePurpose::VerifyEmail => {
            ("Your verification code", "Use this code to confirm your email address:", "24 hours")
        }
        CodePurpose::ResetPassword => {
            ("Your password reset code", "Use this code to choose a new password:", "1 hour")
        }
    };
    let subject = format!("{}: {subject}", email.pool_name);
    let environment = environment();
    let values = context! {
        subject => subject, intro => intro, valid_for => valid_for, code => email.code,
        username => email.username, pool_name => email.pool_name,
    };
    let text = environment.get_template("code.txt")?.render(&values)?;
    let html = environment.get_template("code.html")?.render(&values)?;
    Ok(Email {
        idempotency_key: email.idempotency_key.clone(),
        to: email.to.to_owned(),
        subject,
        text,
        html: Some(html),
        headers: Vec::new(),
    })
}
