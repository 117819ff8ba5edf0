//! The operations any client may call: sign-up, sign-in, and what a user does with their own
//! account (by access token).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::RequestError;
use super::shapes::{
    AttributeType, attribute_list, attribute_map, auth_outcome, authentication_result, delivery, mfa_settings,
};
use super::{AccessTokenOnly, ClientUser, attempt_pool, by_token, parse, required};
use crate::services::cognito::user_pool::operation::PublicOperation;
use crate::services::cognito::user_pool::{AuthFlow, Challenge, Identity};

/// One handler per operation: the request's shape, the pool's call, the response's shape.
pub(super) async fn route(
    identity: &Identity,
    operation: PublicOperation,
    input: Value,
) -> Result<Value, RequestError> {
    match operation {
        PublicOperation::SignUp => sign_up(identity, input).await,
        PublicOperation::ConfirmSignUp => confirm_sign_up(identity, input).await,
        PublicOperation::ResendConfirmationCode => resend_confirmation_code(identity, input).await,
        PublicOperation::InitiateAuth => initiate_auth(identity, input).await,
        PublicOperation::RespondToAuthChallenge => respond_to_auth_challenge(identity, input).await,
        PublicOperation::AssociateSoftwareToken => associate_software_token(identity, input).await,
        PublicOperation::VerifySoftwareToken => verify_software_token(identity, input).await,
        PublicOperation::SetUserMFAPreference => set_user_mfa_preference(identity, input).await,
        PublicOperation::GetUser => get_user(identity, input).await,
        PublicOperation::UpdateUserAttributes => update_user_attributes(identity, input).await,
        PublicOperation::ChangePassword => change_password(identity, input).await,
        PublicOperation::ForgotPassword => forgot_password(identity, input).await,
        PublicOperation::ConfirmForgotPassword => confirm_forgot_password(identity, input).await,
        PublicOperation::GlobalSignOut => global_sign_out(identity, input).await,
        PublicOperation::RevokeToken => revoke_token(identity, input).await,
        PublicOperation::DeleteUser => delete_user(identity, input).await,
    }
}

async fn sign_up(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        client_id: String,
        username: String,
        password: String,
        #[serde(default)]
        user_attributes: Vec<AttributeType>,
    }
    let request: Request = parse(input)?;
    let pool = identity.pool_for_client(&request.client_id)?;
    let (sub, details) = pool
        .sign_up(
            &request.client_id,
            &request.username,
            &request.password,
            attribute_map(request.user_attributes),
        )
        .await?;
    Ok(json!({ "UserConfirmed": false, "UserSub": sub, "CodeDeliveryDetails": delivery(&details) }))
}

async fn confirm_sign_up(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        client_id: String,
        username: String,
        confirmation_code: String,
    }
    let request: Request = parse(input)?;
    let pool = attempt_pool(identity, &request.client_id, &request.username)?;
    pool.confirm_sign_up(&request.client_id, &request.username, &request.confirmation_code).await?;
    Ok(json!({}))
}

async fn resend_confirmation_code(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: ClientUser = parse(input)?;
    let pool = attempt_pool(identity, &request.client_id, &request.username)?;
    let details = pool.resend_confirmation_code(&request.client_id, &request.username).await?;
    Ok(json!({ "CodeDeliveryDetails": delivery(&details) }))
}

async fn initiate_auth(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        auth_flow: String,
        client_id: String,
        #[serde(default)]
        auth_parameters: BTreeMap<String, String>,
    }
    let request: Request = parse(input)?;
    let pool = identity.pool_for_client(&request.client_id)?;
    let flow =
        AuthFlow::parse(&request.auth_flow).ok_or(RequestError::UnsupportedAuthFlow(request.auth_flow))?;
    match flow {
        AuthFlow::UserPassword => {
            let username = required(&request.auth_parameters, "USERNAME")?;
            let password = required(&request.auth_parameters, "PASSWORD")?;
            identity.throttle.attempt(pool.id(), &username)?;
            Ok(auth_outcome(&pool.password_auth(&request.client_id, &username, &password).await?))
        }
        AuthFlow::RefreshToken => {
            let token = required(&request.auth_parameters, "REFRESH_TOKEN")?;
            Ok(authentication_result(&pool.refresh(&request.client_id, &token).await?))
        }
    }
}

async fn respond_to_auth_challenge(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        challenge_name: String,
        client_id: String,
        session: String,
        #[serde(default)]
        challenge_responses: BTreeMap<String, String>,
    }
    let request: Request = parse(input)?;
    let pool = identity.pool_for_client(&request.client_id)?;
    let username = required(&request.challenge_responses, "USERNAME")?;
    identity.throttle.attempt(pool.id(), &username)?;
    let challenge = Challenge::parse(&request.challenge_name)
        .ok_or(RequestError::UnsupportedChallenge(request.challenge_name))?;
    match challenge {
        Challenge::SoftwareTokenMfa => {
            let code = required(&request.challenge_responses, "SOFTWARE_TOKEN_MFA_CODE")?;
            Ok(authentication_result(
                &pool.respond_mfa(&request.client_id, &request.session, &username, &code).await?,
            ))
        }
        Challenge::NewPasswordRequired => {
            let password = required(&request.challenge_responses, "NEW_PASSWORD")?;
            let outcome =
                pool.respond_new_password(&request.client_id, &request.session, &username, &password).await?;
            Ok(auth_outcome(&outcome))
        }
    }
}

async fn associate_software_token(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: AccessTokenOnly = parse(input)?;
    let secret =
        by_token(identity, &request.access_token)?.associate_software_token(&request.access_token).await?;
    Ok(json!({ "SecretCode": secret }))
}

async fn verify_software_token(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        access_token: String,
        user_code: String,
    }
    let request: Request = parse(input)?;
    let pool = by_token(identity, &request.access_token)?;
    let user = pool.get_user(&request.access_token).await?;
    identity.throttle.attempt(pool.id(), &user.username)?;
    pool.verify_software_token(&request.access_token, &request.user_code).await?;
    Ok(json!({ "Status": "SUCCESS" }))
}

async fn set_user_mfa_preference(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Settings {
        enabled: Option<bool>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        access_token: String,
        software_token_mfa_settings: Option<Settings>,
    }
    let request: Request = parse(input)?;
    if let Some(enabled) = request.software_token_mfa_settings.and_then(|settings| settings.enabled) {
        by_token(identity, &request.access_token)?.set_mfa_preference(&request.access_token, enabled).await?;
    }
    Ok(json!({}))
}

async fn get_user(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: AccessTokenOnly = parse(input)?;
    let user = by_token(identity, &request.access_token)?.get_user(&request.access_token).await?;
    let (preferred, list) = mfa_settings(&user);
    let mut body = json!({
        "Username": user.username, "UserAttributes": attribute_list(&user.attributes),
        "MFAOptions": [], "UserMFASettingList": list,
    });
    if !preferred.is_null() {
        body["PreferredMfaSetting"] = preferred;
    }
    Ok(body)
}

async fn update_user_attributes(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        access_token: String,
        user_attributes: Vec<AttributeType>,
    }
    let request: Request = parse(input)?;
    let pool = by_token(identity, &request.access_token)?;
    pool.update_user_attributes(&request.access_token, attribute_map(request.user_attributes)).await?;
    Ok(json!({ "CodeDeliveryDetailsList": [] }))
}

async fn change_password(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        access_token: String,
        previous_password: String,
        proposed_password: String,
    }
    let request: Request = parse(input)?;
    let pool = by_token(identity, &request.access_token)?;
    let user = pool.get_user(&request.access_token).await?;
    identity.throttle.attempt(pool.id(), &user.username)?;
    pool.change_password(&request.access_token, &request.previous_password, &request.proposed_password)
        .await?;
    Ok(json!({}))
}

async fn forgot_password(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: ClientUser = parse(input)?;
    let pool = attempt_pool(identity, &request.client_id, &request.username)?;
    let details = pool.forgot_password(&request.client_id, &request.username).await?;
    Ok(json!({ "CodeDeliveryDetails": delivery(&details) }))
}

async fn confirm_forgot_password(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        client_id: String,
        username: String,
        confirmation_code: String,
        password: String,
    }
    let request: Request = parse(input)?;
    let pool = attempt_pool(identity, &request.client_id, &request.username)?;
    pool.confirm_forgot_password(
        &request.client_id,
        &request.username,
        &request.confirmation_code,
        &request.password,
    )
    .await?;
    Ok(json!({}))
}

async fn global_sign_out(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: AccessTokenOnly = parse(input)?;
    by_token(identity, &request.access_token)?.global_sign_out(&request.access_token).await?;
    Ok(json!({}))
}

async fn revoke_token(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        token: String,
        client_id: String,
    }
    let request: Request = parse(input)?;
    identity.pool_for_client(&request.client_id)?.revoke_token(&request.client_id, &request.token).await?;
    Ok(json!({}))
}

async fn delete_user(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: AccessTokenOnly = parse(input)?;
    by_token(identity, &request.access_token)?.delete_user(&request.access_token).await?;
    Ok(json!({}))
}
