//! The operations only the operator may call (signed with the operator's credentials).

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::RequestError;
use super::shapes::{AttributeType, attribute_map, group_type, mfa_settings, user_type};
use super::{Membership, PoolUser, parse, pool_of};
use crate::services::cognito::user_pool::operation::OperatorOperation;
use crate::services::cognito::user_pool::{AdminCreateUser, Identity};

pub(super) async fn route_admin(
    identity: &Identity,
    operation: OperatorOperation,
    input: Value,
) -> Result<Value, RequestError> {
    match operation {
        OperatorOperation::AdminCreateUser => admin_create_user(identity, input).await,
        OperatorOperation::AdminSetUserPassword => admin_set_user_password(identity, input).await,
        OperatorOperation::AdminGetUser => admin_get_user(identity, input).await,
        OperatorOperation::AdminDeleteUser => admin_delete_user(identity, input).await,
        OperatorOperation::AdminDisableUser => admin_set_enabled(identity, input, false).await,
        OperatorOperation::AdminEnableUser => admin_set_enabled(identity, input, true).await,
        OperatorOperation::AdminAddUserToGroup => admin_set_membership(identity, input, true).await,
        OperatorOperation::AdminRemoveUserFromGroup => admin_set_membership(identity, input, false).await,
        OperatorOperation::ListUsers => list_users(identity, input).await,
        OperatorOperation::CreateGroup => create_group(identity, input).await,
        OperatorOperation::ListGroups => list_groups(identity, input).await,
    }
}

async fn admin_create_user(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        user_pool_id: String,
        username: String,
        #[serde(default)]
        user_attributes: Vec<AttributeType>,
        temporary_password: Option<String>,
    }
    let request: Request = parse(input)?;
    let user = pool_of(identity, &request.user_pool_id)?
        .admin_create_user(AdminCreateUser {
            username: request.username,
            attributes: attribute_map(request.user_attributes),
            temporary_password: request.temporary_password,
        })
        .await?;
    Ok(json!({ "User": user_type(&user) }))
}

async fn admin_set_user_password(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        user_pool_id: String,
        username: String,
        password: String,
        #[serde(default)]
        permanent: bool,
    }
    let request: Request = parse(input)?;
    pool_of(identity, &request.user_pool_id)?
        .admin_set_user_password(&request.username, &request.password, request.permanent)
        .await?;
    Ok(json!({}))
}

async fn admin_get_user(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: PoolUser = parse(input)?;
    let user = pool_of(identity, &request.user_pool_id)?.admin_get_user(&request.username)?;
    let (preferred, list) = mfa_settings(&user);
    let mut body = user_type(&user);
    body["UserAttributes"] = body["Attributes"].take();
    body.as_object_mut().map(|object| object.remove("Attributes"));
    body["UserMFASettingList"] = list;
    if !preferred.is_null() {
        body["PreferredMfaSetting"] = preferred;
    }
    Ok(body)
}

async fn admin_delete_user(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    let request: PoolUser = parse(input)?;
    pool_of(identity, &request.user_pool_id)?.admin_delete_user(&request.username).await?;
    Ok(json!({}))
}

async fn admin_set_enabled(identity: &Identity, input: Value, enabled: bool) -> Result<Value, RequestError> {
    let request: PoolUser = parse(input)?;
    pool_of(identity, &request.user_pool_id)?.admin_set_enabled(&request.username, enabled).await?;
    Ok(json!({}))
}

async fn admin_set_membership(
    identity: &Identity,
    input: Value,
    member: bool,
) -> Result<Value, RequestError> {
    let request: Membership = parse(input)?;
    pool_of(identity, &request.user_pool_id)?
        .set_membership(&request.username, &request.group_name, member)
        .await?;
    Ok(json!({}))
}

async fn list_users(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        user_pool_id: String,
        filter: Option<String>,
        limit: Option<usize>,
        pagination_token: Option<String>,
    }
    let request: Request = parse(input)?;
    let (users, next) = pool_of(identity, &request.user_pool_id)?.list_users(
        request.filter.as_deref(),
        request.limit.unwrap_or(60),
        request.pagination_token.as_deref(),
    )?;
    let mut body = json!({ "Users": users.iter().map(user_type).collect::<Vec<_>>() });
    if let Some(next) = next {
        body["PaginationToken"] = json!(next);
    }
    Ok(body)
}

async fn create_group(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        user_pool_id: String,
        group_name: String,
        description: Option<String>,
        precedence: Option<i64>,
    }
    let request: Request = parse(input)?;
    let group = pool_of(identity, &request.user_pool_id)?
        .create_group(&request.group_name, request.description, request.precedence)
        .await?;
    Ok(json!({ "Group": group_type(&request.user_pool_id, &group) }))
}

async fn list_groups(identity: &Identity, input: Value) -> Result<Value, RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request {
        user_pool_id: String,
    }
    let request: Request = parse(input)?;
    let groups = pool_of(identity, &request.user_pool_id)?.groups()?;
    Ok(
        json!({ "Groups": groups.iter().map(|group| group_type(&request.user_pool_id, group)).collect::<Vec<_>>() }),
    )
}
