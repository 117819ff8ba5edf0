//! Cognito's response shapes (and the attribute list requests share).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::services::cognito::user_pool::{AuthOutcome, CodeDelivery, Group, Tokens, UserRecord};

#[derive(Debug, Deserialize)]
pub(super) struct AttributeType {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Value", default)]
    value: String,
}

pub(super) fn attribute_map(list: Vec<AttributeType>) -> BTreeMap<String, String> {
    list.into_iter().map(|attribute| (attribute.name, attribute.value)).collect()
}

pub(super) fn attribute_list(attributes: &BTreeMap<String, String>) -> Value {
    Value::Array(attributes.iter().map(|(name, value)| json!({ "Name": name, "Value": value })).collect())
}

pub(super) fn delivery(details: &CodeDelivery) -> Value {
    json!({ "Destination": details.destination, "DeliveryMedium": details.medium, "AttributeName": details.attribute })
}

pub(super) fn authentication_result(tokens: &Tokens) -> Value {
    let mut result = json!({
        "AccessToken": tokens.access_token,
        "IdToken": tokens.id_token,
        "ExpiresIn": tokens.expires_in,
        "TokenType": "Bearer",
    });
    if let Some(refresh) = &tokens.refresh_token {
        result["RefreshToken"] = json!(refresh);
    }
    json!({ "AuthenticationResult": result, "ChallengeParameters": {} })
}

pub(super) fn auth_outcome(outcome: &AuthOutcome) -> Value {
    match outcome {
        AuthOutcome::Authenticated(tokens) => authentication_result(tokens),
        AuthOutcome::Challenge { challenge, session, username } => json!({
            "ChallengeName": challenge.as_str(),
            "Session": session,
            "ChallengeParameters": { "USER_ID_FOR_SRP": username, "userAttributes": "{}", "requiredAttributes": "[]" },
        }),
    }
}

/// Cognito's `UserType`.
pub(super) fn user_type(user: &UserRecord) -> Value {
    json!({
        "Username": user.username,
        "Attributes": attribute_list(&user.attributes),
        "UserCreateDate": user.created_at,
        "UserLastModifiedDate": user.updated_at,
        "Enabled": user.enabled,
        "UserStatus": user.status.as_str(),
        "MFAOptions": [],
    })
}

pub(super) fn mfa_settings(user: &UserRecord) -> (Value, Value) {
    if user.mfa_enabled {
        (json!("SOFTWARE_TOKEN_MFA"), json!(["SOFTWARE_TOKEN_MFA"]))
    } else {
        (Value::Null, json!([]))
    }
}

pub(super) fn group_type(pool_id: &str, group: &Group) -> Value {
    let mut body = json!({
        "GroupName": group.name, "UserPoolId": pool_id,
        "CreationDate": group.created_at, "LastModifiedDate": group.updated_at,
    });
    if let Some(description) = &group.description {
        body["Description"] = json!(description);
    }
    if let Some(precedence) = group.precedence {
        body["Precedence"] = json!(precedence);
    }
    body
}
