//! The Cognito-compatible user pool, through its wire protocol.

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use stratus::services::cognito::user_pool::operation::OperatorOperation;

use crate::support::TestApp;

const PASSWORD: &str = "Correct-Horse-9";

async fn discovered_claims(app: &TestApp, token: &str) -> Value {
    let issuer = format!("{}/{}", app.base, app.pool_id);
    let discovery: Value = app
        .http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["issuer"], issuer);
    let jwks: JwkSet = app
        .http
        .get(discovery["jwks_uri"].as_str().expect("jwks_uri"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let kid = jsonwebtoken::decode_header(token).expect("header").kid.expect("kid");
    let jwk = jwks.find(&kid).expect("the token's key is published");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).expect("key"), &validation)
        .expect("valid token")
        .claims
}

fn error_type(body: &Value) -> &str {
    body["__type"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn sign_up_confirm_and_sign_in_issue_cognito_shaped_tokens() {
    let app = TestApp::spawn().await;
    assert!(
        app.pool_id.starts_with("us-east-1_") && app.pool_id.len() == "us-east-1_".len() + 9,
        "{}",
        app.pool_id
    );
    assert!(
        app.client_id.len() == 26
            && app.client_id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    let (status, body) = app
        .cognito(
            "SignUp",
            json!({"ClientId": app.client_id, "Username": "ada", "Password": PASSWORD,
                   "UserAttributes": [{"Name": "email", "Value": "Ada@Example.com"}, {"Name": "name", "Value": "Ada L."}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["UserConfirmed"], false);
    assert_eq!(body["CodeDeliveryDetails"]["Destination"], "a***@e***");
    let sub = body["UserSub"].as_str().expect("sub").to_owned();

    let (status, body) = app
        .cognito("InitiateAuth", json!({"ClientId": app.client_id, "AuthFlow": "USER_PASSWORD_AUTH", "AuthParameters": {"USERNAME": "ada", "PASSWORD": PASSWORD}}))
        .await;
    assert_eq!((status, error_type(&body)), (400, "UserNotConfirmedException"));

    let code = app.next_code_for("ada@example.com");
    let (status, body) = app
        .cognito(
            "ConfirmSignUp",
            json!({"ClientId": app.client_id, "Username": "ada", "ConfirmationCode": code}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .cognito(
            "ConfirmSignUp",
            json!({"ClientId": app.client_id, "Username": "ada", "ConfirmationCode": code}),
        )
        .await;
    assert_eq!((status, error_type(&body)), (400, "NotAuthorizedException"), "a code is single use");

    let tokens = app.sign_in("ADA", PASSWORD).await;
    let result = &tokens["AuthenticationResult"];
    assert_eq!(result["TokenType"], "Bearer");
    assert_eq!(result["ExpiresIn"], 3600);
    let access = discovered_claims(&app, result["AccessToken"].as_str().expect("access")).await;
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["sub"], sub);
    assert_eq!(access["client_id"], app.client_id);
    assert_eq!(access["username"], "ada");
    assert_eq!(access["exp"].as_i64().expect("exp") - access["iat"].as_i64().expect("iat"), 3600);
    for claim in ["jti", "origin_jti", "auth_time", "event_id"] {
        assert!(!access[claim].is_null(), "access token lacks {claim}");
    }
    let id = discovered_claims(&app, result["IdToken"].as_str().expect("id")).await;
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["aud"], app.client_id);
    assert_eq!(id["cognito:username"], "ada");
    assert_eq!(id["email"], "ada@example.com");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["name"], "Ada L.");
    assert_eq!(id["origin_jti"], access["origin_jti"]);

    let (status, user) = app.cognito("GetUser", json!({"AccessToken": result["AccessToken"]})).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["Username"], "ada");
    let attributes = user["UserAttributes"].as_array().expect("attributes");
    assert!(attributes.contains(&json!({"Name": "sub", "Value": sub})));
    app.stop().await;
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_are_indistinguishable() {
    let app = TestApp::spawn().await;
    app.signed_in_user("grace", PASSWORD).await;
    let attempt = |username: &'static str| {
        let app = &app;
        async move {
            app.cognito(
                "InitiateAuth",
                json!({"ClientId": app.client_id, "AuthFlow": "USER_PASSWORD_AUTH", "AuthParameters": {"USERNAME": username, "PASSWORD": "Wrong-Pass-1"}}),
            )
            .await
        }
    };
    let (wrong_password, unknown_user) = (attempt("grace").await, attempt("nobody").await);
    assert_eq!(wrong_password, unknown_user);
    assert_eq!(wrong_password.0, 400);
    assert_eq!(error_type(&wrong_password.1), "NotAuthorizedException");
    assert_eq!(wrong_password.1["message"], "Incorrect username or password.");
    // Password reset "succeeds" for unknown users too, and sends nothing.
    let (status, body) =
        app.cognito("ForgotPassword", json!({"ClientId": app.client_id, "Username": "nobody"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["CodeDeliveryDetails"]["DeliveryMedium"], "EMAIL");
    let (_, again) =
        app.cognito("ForgotPassword", json!({"ClientId": app.client_id, "Username": "nobody"})).await;
    assert_eq!(again["CodeDeliveryDetails"], body["CodeDeliveryDetails"], "the decoy answer is stable");
    let (status, body) =
        app.cognito("ResendConfirmationCode", json!({"ClientId": app.client_id, "Username": "nobody"})).await;
    assert_eq!(status, 200, "resending to an unknown user looks like success: {body}");
    let (status, body) = app
        .cognito(
            "ConfirmSignUp",
            json!({"ClientId": app.client_id, "Username": "nobody", "ConfirmationCode": "123456"}),
        )
        .await;
    assert_eq!((status, error_type(&body)), (400, "CodeMismatchException"), "as for a wrong code");
    let outbox = app.platform.outbox().expect("outbox").list().expect("list");
    assert!(
        outbox.iter().all(|message| message.to == "grace@example.com"),
        "nothing is mailed for unknown users"
    );
    app.stop().await;
}

#[tokio::test]
async fn sign_up_errors_use_cognito_names_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.signed_in_user("alan", PASSWORD).await;
    let sign_up = |username: &str, password: &str, email: &str| json!({"ClientId": app.client_id, "Username": username, "Password": password, "UserAttributes": [{"Name": "email", "Value": email}]});
    let cases = [
        (sign_up("alan", PASSWORD, "other@example.com"), "UsernameExistsException"),
        (sign_up("ALAN", PASSWORD, "other@example.com"), "UsernameExistsException"),
        (sign_up("weak", "password", "weak@example.com"), "InvalidPasswordException"),
        (sign_up("bad-email", PASSWORD, "not-an-address"), "InvalidParameterException"),
        (
            json!({"ClientId": app.client_id, "Username": "noemail", "Password": PASSWORD}),
            "InvalidParameterException",
        ),
        (json!({"ClientId": app.client_id, "Password": PASSWORD}), "InvalidParameterException"),
        (
            json!({"ClientId": "unknownclient", "Username": "x", "Password": PASSWORD, "UserAttributes": [{"Name": "email", "Value": "x@example.com"}]}),
            "ResourceNotFoundException",
        ),
        (
            json!({"ClientId": app.client_id, "Username": "custom", "Password": PASSWORD, "UserAttributes": [{"Name": "email", "Value": "c@example.com"}, {"Name": "email_verified", "Value": "true"}]}),
            "InvalidParameterException",
        ),
    ];
    for (request, expected) in cases {
        let (status, body) = app.cognito("SignUp", request.clone()).await;
        assert_eq!((status, error_type(&body)), (400, expected), "{request}: {body}");
    }
    let (status, body) = app.admin("ListUsers", json!({"UserPoolId": app.pool_id})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Users"].as_array().expect("users").len(), 1, "nothing was created by the failed calls");
    app.stop().await;
}

#[tokio::test]
async fn codes_expire_are_single_use_and_limited_in_attempts() {
    let app = TestApp::spawn().await;
    let email = "edsger@example.com";
    let (status, _) = app
        .cognito("SignUp", json!({"ClientId": app.client_id, "Username": "edsger", "Password": PASSWORD, "UserAttributes": [{"Name": "email", "Value": email}]}))
        .await;
    assert_eq!(status, 200);
    let first = app.next_code_for(email);
    let confirm =
        |code: String| json!({"ClientId": app.client_id, "Username": "edsger", "ConfirmationCode": code});
    let wrong = if first == "000000" { "111111" } else { "000000" };
    let (status, body) = app.cognito("ConfirmSignUp", confirm(wrong.into())).await;
    assert_eq!((status, error_type(&body)), (400, "CodeMismatchException"));

    app.clock.advance(Duration::from_secs(25 * 3600));
    let (status, body) = app.cognito("ConfirmSignUp", confirm(first)).await;
    assert_eq!((status, error_type(&body)), (400, "ExpiredCodeException"), "sign-up codes last 24 hours");

    let (status, _) =
        app.cognito("ResendConfirmationCode", json!({"ClientId": app.client_id, "Username": "edsger"})).await;
    assert_eq!(status, 200);
    let second = app.next_code_for(email);
    for _ in 0..5 {
        let (_, body) = app.cognito("ConfirmSignUp", confirm(wrong.into())).await;
        assert_eq!(error_type(&body), "CodeMismatchException");
    }
    let (status, body) = app.cognito("ConfirmSignUp", confirm(second)).await;
    assert_eq!(
        (status, error_type(&body)),
        (400, "LimitExceededException"),
        "five wrong guesses burn the code"
    );
    app.stop().await;
}

#[tokio::test]
async fn sign_in_attempts_are_throttled_per_user() {
    let app = TestApp::spawn_with(|config| config.identity.sign_in_per_user_per_minute = 3, |_| {}).await;
    let attempt = json!({"ClientId": app.client_id, "AuthFlow": "USER_PASSWORD_AUTH", "AuthParameters": {"USERNAME": "mallory", "PASSWORD": "Guess-1234!"}});
    let mut types = Vec::new();
    for _ in 0..5 {
        let (_, body) = app.cognito("InitiateAuth", attempt.clone()).await;
        types.push(error_type(&body).to_owned());
    }
    assert_eq!(types[..3], ["NotAuthorizedException"; 3]);
    assert_eq!(types[3..], ["TooManyRequestsException"; 2]);
    app.stop().await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in_user("barbara", PASSWORD).await;
    let first = tokens["AuthenticationResult"]["RefreshToken"].as_str().expect("refresh").to_owned();
    let refresh = |token: &str| json!({"ClientId": app.client_id, "AuthFlow": "REFRESH_TOKEN_AUTH", "AuthParameters": {"REFRESH_TOKEN": token}});
    let (status, body) = app.cognito("InitiateAuth", refresh(&first)).await;
    assert_eq!(status, 200, "{body}");
    let second = body["AuthenticationResult"]["RefreshToken"].as_str().expect("rotated").to_owned();
    assert_ne!(first, second);
    let access = body["AuthenticationResult"]["AccessToken"].clone();

    // The rotated token is presented again: someone else may hold it. The family dies.
    let (status, body) = app.cognito("InitiateAuth", refresh(&first)).await;
    assert_eq!((status, error_type(&body)), (400, "NotAuthorizedException"));
    let (status, body) = app.cognito("InitiateAuth", refresh(&second)).await;
    assert_eq!((status, error_type(&body)), (400, "NotAuthorizedException"), "{body}");
    let (status, body) = app.cognito("GetUser", json!({"AccessToken": access})).await;
    assert_eq!(
        (status, error_type(&body)),
        (400, "NotAuthorizedException"),
        "access tokens of the family are revoked"
    );
    app.stop().await;
}

#[tokio::test]
async fn global_sign_out_revokes_refresh_and_access_tokens() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in_user("ken", PASSWORD).await;
    let other_session = app.sign_in("ken", PASSWORD).await;
    let access = tokens["AuthenticationResult"]["AccessToken"].clone();
    let (status, _) = app.cognito("GlobalSignOut", json!({"AccessToken": access})).await;
    assert_eq!(status, 200);
    for session in [&tokens, &other_session] {
        let refresh = session["AuthenticationResult"]["RefreshToken"].clone();
        let (status, body) = app
            .cognito("InitiateAuth", json!({"ClientId": app.client_id, "AuthFlow": "REFRESH_TOKEN_AUTH", "AuthParameters": {"REFRESH_TOKEN": refresh}}))
            .await;
        assert_eq!((status, error_type(&body)), (400, "NotAuthorizedException"));
        let (status, body) = app
            .cognito("GetUser", json!({"AccessToken": session["AuthenticationResult"]["AccessToken"]}))
            .await;
        assert_eq!((status, error_type(&body)), (400, "NotAuthorizedException"));
    }
    let fresh = app.sign_in("ken", PASSWORD).await;
    let (status, _) =
        app.cognito("GetUser", json!({"AccessToken": fresh["AuthenticationResult"]["AccessToken"]})).await;
    assert_eq!(status, 200, "signing in again works");
    let (status, _) = app
        .cognito(
            "RevokeToken",
            json!({"ClientId": app.client_id, "Token": fresh["AuthenticationResult"]["RefreshToken"]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) =
        app.cognito("GetUser", json!({"AccessToken": fresh["AuthenticationResult"]["AccessToken"]})).await;
    assert_eq!(status, 400, "RevokeToken revokes the access tokens of its family");
    app.stop().await;
}

fn totp_code(secret: &str, at: std::time::SystemTime) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned()).to_bytes().expect("base32");
    let totp = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes);
    totp.generate(at.duration_since(std::time::UNIX_EPOCH).expect("time").as_secs())
}

#[tokio::test]
async fn totp_mfa_challenges_sign_in_and_accepts_each_code_once() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in_user("margaret", PASSWORD).await;
    let access = tokens["AuthenticationResult"]["AccessToken"].clone();
    let (status, body) = app.cognito("AssociateSoftwareToken", json!({"AccessToken": access})).await;
    assert_eq!(status, 200, "{body}");
    let secret = body["SecretCode"].as_str().expect("secret").to_owned();
    let (status, body) =
        app.cognito("VerifySoftwareToken", json!({"AccessToken": access, "UserCode": "000000"})).await;
    assert_eq!((status, error_type(&body)), (400, "EnableSoftwareTokenMFAException"));
    use stratus::infra::clock::Clock as _;
    let now = app.clock.now();
    let (status, body) = app
        .cognito("VerifySoftwareToken", json!({"AccessToken": access, "UserCode": totp_code(&secret, now)}))
        .await;
    assert_eq!((status, &body["Status"]), (200, &json!("SUCCESS")), "{body}");
    let (status, _) = app
        .cognito("SetUserMFAPreference", json!({"AccessToken": access, "SoftwareTokenMfaSettings": {"Enabled": true, "PreferredMfa": true}}))
        .await;
    assert_eq!(status, 200);
    let (_, user) = app.cognito("GetUser", json!({"AccessToken": access})).await;
    assert_eq!(user["PreferredMfaSetting"], "SOFTWARE_TOKEN_MFA");

    app.clock.advance(Duration::from_secs(30));
    let challenge = app.sign_in("margaret", PASSWORD).await;
    assert_eq!(challenge["ChallengeName"], "SOFTWARE_TOKEN_MFA");
    assert!(challenge["AuthenticationResult"].is_null());
    let code = totp_code(&secret, app.clock.now());
    let respond = |session: &Value, code: &str| {
        json!({"ClientId": app.client_id, "ChallengeName": "SOFTWARE_TOKEN_MFA", "Session": session,
               "ChallengeResponses": {"USERNAME": "margaret", "SOFTWARE_TOKEN_MFA_CODE": code}})
    };
    let (status, body) = app.cognito("RespondToAuthChallenge", respond(&challenge["Session"], &code)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["AuthenticationResult"]["AccessToken"].is_string());

    let again = app.sign_in("margaret", PASSWORD).await;
    let (status, body) = app.cognito("RespondToAuthChallenge", respond(&again["Session"], &code)).await;
    assert_eq!((status, error_type(&body)), (400, "CodeMismatchException"), "a TOTP code is accepted once");
    let (status, body) =
        app.cognito("RespondToAuthChallenge", respond(&json!("forged-session"), &code)).await;
    assert_eq!((status, error_type(&body)), (400, "NotAuthorizedException"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn password_change_and_reset_revoke_refresh_tokens() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in_user("linus", PASSWORD).await;
    let result = &tokens["AuthenticationResult"];
    let (status, body) = app
        .cognito("ChangePassword", json!({"AccessToken": result["AccessToken"], "PreviousPassword": "Wrong-Pass-1", "ProposedPassword": "New-Pass-123"}))
        .await;
    assert_eq!((status, error_type(&body)), (400, "NotAuthorizedException"));
    let (status, body) = app
        .cognito("ChangePassword", json!({"AccessToken": result["AccessToken"], "PreviousPassword": PASSWORD, "ProposedPassword": "New-Pass-123"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let refresh = json!({"ClientId": app.client_id, "AuthFlow": "REFRESH_TOKEN_AUTH", "AuthParameters": {"REFRESH_TOKEN": result["RefreshToken"]}});
    let (status, _) = app.cognito("InitiateAuth", refresh).await;
    assert_eq!(status, 400, "a password change revokes refresh tokens");
    let (status, _) = app.cognito("GetUser", json!({"AccessToken": result["AccessToken"]})).await;
    assert_eq!(status, 200, "as in Cognito, the access token lives until it expires or the user signs out");

    let session = app.sign_in("linus", "New-Pass-123").await;
    let (status, _) =
        app.cognito("ForgotPassword", json!({"ClientId": app.client_id, "Username": "linus"})).await;
    assert_eq!(status, 200);
    let code = app.next_code_for("linus@example.com");
    let confirm = |code: &str, password: &str| json!({"ClientId": app.client_id, "Username": "linus", "ConfirmationCode": code, "Password": password});
    let (status, body) = app.cognito("ConfirmForgotPassword", confirm(&code, "weak")).await;
    assert_eq!((status, error_type(&body)), (400, "InvalidPasswordException"));
    let (status, body) = app.cognito("ConfirmForgotPassword", confirm(&code, "Reset-Pass-456")).await;
    assert_eq!(status, 200, "{body}");
    let refresh = json!({"ClientId": app.client_id, "AuthFlow": "REFRESH_TOKEN_AUTH", "AuthParameters": {"REFRESH_TOKEN": session["AuthenticationResult"]["RefreshToken"]}});
    let (status, _) = app.cognito("InitiateAuth", refresh).await;
    assert_eq!(status, 400, "a reset revokes refresh tokens");
    app.sign_in("linus", "Reset-Pass-456").await;
    app.stop().await;
}

#[tokio::test]
async fn operators_manage_users_and_groups_with_signed_requests() {
    let app = TestApp::spawn().await;
    let pool = app.pool_id.clone();
    let (status, body) = app
        .admin(
            "AdminCreateUser",
            json!({"UserPoolId": pool, "Username": "author1", "TemporaryPassword": "Temp-Pass-1",
                   "UserAttributes": [{"Name": "email", "Value": "author1@example.com"}, {"Name": "email_verified", "Value": "true"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["User"]["UserStatus"], "FORCE_CHANGE_PASSWORD");
    let (status, body) = app
        .admin(
            "CreateGroup",
            json!({"UserPoolId": pool, "GroupName": "authors", "Description": "Blog authors"}),
        )
        .await;
    assert_eq!((status, &body["Group"]["GroupName"]), (200, &json!("authors")), "{body}");
    let (_, body) = app.admin("CreateGroup", json!({"UserPoolId": pool, "GroupName": "authors"})).await;
    assert_eq!(error_type(&body), "GroupExistsException");
    let (status, _) = app
        .admin(
            "AdminAddUserToGroup",
            json!({"UserPoolId": pool, "Username": "author1", "GroupName": "authors"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = app
        .admin("AdminAddUserToGroup", json!({"UserPoolId": pool, "Username": "author1", "GroupName": "nope"}))
        .await;
    assert_eq!(error_type(&body), "ResourceNotFoundException");

    let challenge = app.sign_in("author1", "Temp-Pass-1").await;
    assert_eq!(challenge["ChallengeName"], "NEW_PASSWORD_REQUIRED");
    let (status, body) = app
        .cognito(
            "RespondToAuthChallenge",
            json!({"ClientId": app.client_id, "ChallengeName": "NEW_PASSWORD_REQUIRED", "Session": challenge["Session"],
                   "ChallengeResponses": {"USERNAME": "author1", "NEW_PASSWORD": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let access = body["AuthenticationResult"]["AccessToken"].as_str().expect("access").to_owned();
    let claims = discovered_claims(&app, &access).await;
    assert_eq!(claims["cognito:groups"], json!(["authors"]));

    app.signed_in_user("reader", PASSWORD).await;
    let (_, body) = app
        .admin("ListUsers", json!({"UserPoolId": pool, "Filter": "email = \"author1@example.com\""}))
        .await;
    let names: Vec<&str> = body["Users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["Username"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["author1"]);
    let (_, body) =
        app.admin("ListUsers", json!({"UserPoolId": pool, "Filter": "username ^= \"rea\""})).await;
    assert_eq!(body["Users"][0]["Username"], "reader");
    let (_, body) = app.admin("ListUsers", json!({"UserPoolId": pool, "Filter": "password = \"x\""})).await;
    assert_eq!(error_type(&body), "InvalidParameterException");
    let (_, page) = app.admin("ListUsers", json!({"UserPoolId": pool, "Limit": 1})).await;
    assert_eq!(page["Users"].as_array().expect("users").len(), 1);
    let (_, rest) = app
        .admin(
            "ListUsers",
            json!({"UserPoolId": pool, "Limit": 1, "PaginationToken": page["PaginationToken"]}),
        )
        .await;
    assert_ne!(rest["Users"][0]["Username"], page["Users"][0]["Username"]);

    let (status, _) = app.admin("AdminDisableUser", json!({"UserPoolId": pool, "Username": "reader"})).await;
    assert_eq!(status, 200);
    let (_, body) = app
        .cognito("InitiateAuth", json!({"ClientId": app.client_id, "AuthFlow": "USER_PASSWORD_AUTH", "AuthParameters": {"USERNAME": "reader", "PASSWORD": PASSWORD}}))
        .await;
    assert_eq!(error_type(&body), "NotAuthorizedException");
    let (_, user) = app.admin("AdminGetUser", json!({"UserPoolId": pool, "Username": "reader"})).await;
    assert_eq!(user["Enabled"], false);
    app.admin("AdminEnableUser", json!({"UserPoolId": pool, "Username": "reader"})).await;
    app.sign_in("reader", PASSWORD).await;
    let (status, _) = app.admin("AdminDeleteUser", json!({"UserPoolId": pool, "Username": "reader"})).await;
    assert_eq!(status, 200);
    let (_, body) = app.admin("AdminGetUser", json!({"UserPoolId": pool, "Username": "reader"})).await;
    assert_eq!(error_type(&body), "UserNotFoundException");
    let (_, body) = app.admin("ListGroups", json!({"UserPoolId": pool})).await;
    assert_eq!(body["Groups"][0]["Description"], "Blog authors");
    let (status, _) = app
        .admin(
            "AdminRemoveUserFromGroup",
            json!({"UserPoolId": pool, "Username": "author1", "GroupName": "authors"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, user) = app.admin("AdminGetUser", json!({"UserPoolId": pool, "Username": "author1"})).await;
    assert_eq!(user["UserStatus"], "CONFIRMED");
    let again = app.sign_in("author1", PASSWORD).await;
    let claims =
        discovered_claims(&app, again["AuthenticationResult"]["AccessToken"].as_str().expect("token")).await;
    assert!(claims["cognito:groups"].is_null(), "removed from the group: {claims}");
    let (_, body) =
        app.admin("AdminGetUser", json!({"UserPoolId": "us-east-1_NoSuchOne", "Username": "x"})).await;
    assert_eq!(error_type(&body), "ResourceNotFoundException");
    app.stop().await;
}

#[tokio::test]
async fn admin_calls_without_valid_operator_signatures_are_refused() {
    let app = TestApp::spawn().await;
    let request = json!({"UserPoolId": app.pool_id});
    // Every operator operation, with a body that would otherwise be served.
    let everything = json!({
        "UserPoolId": app.pool_id, "Username": "someone", "GroupName": "authors", "Password": "Pa55word!long",
    });
    for operation in OperatorOperation::ALL {
        let (status, body) = app.cognito(operation.name(), everything.clone()).await;
        assert_eq!(
            (status, error_type(&body)),
            (400, "MissingAuthenticationTokenException"),
            "{operation:?}"
        );
    }
    let (status, body) = app.signed("ListUsers", request, "not-the-operator-secret").await;
    assert_eq!((status, error_type(&body)), (400, "InvalidSignatureException"));
    app.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_cognito_errors_never_500() {
    let app = TestApp::spawn().await;
    let raw = |target: &str, content_type: &str, body: Vec<u8>| {
        app.http
            .post(format!("{}/", app.base))
            .header("x-amz-target", target)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cognito = "application/x-amz-json-1.1";
    let cases = [
        (
            raw("AWSCognitoIdentityProviderService.SignUp", cognito, b"{not json".to_vec()).await,
            "SerializationException",
        ),
        (
            raw("AWSCognitoIdentityProviderService.SignUp", cognito, b"[1, 2]".to_vec()).await,
            "SerializationException",
        ),
        (
            raw("AWSCognitoIdentityProviderService.Explode", cognito, b"{}".to_vec()).await,
            "UnknownOperationException",
        ),
        (raw("SomethingElse.SignUp", cognito, b"{}".to_vec()).await, "UnknownOperationException"),
        (
            raw("AWSCognitoIdentityProviderService.SignUp", "text/plain", b"{}".to_vec()).await,
            "SerializationException",
        ),
        (
            raw("AWSCognitoIdentityProviderService.InitiateAuth", cognito, br#"{"ClientId": 5}"#.to_vec())
                .await,
            "InvalidParameterException",
        ),
        (
            raw(
                "AWSCognitoIdentityProviderService.GetUser",
                cognito,
                br#"{"AccessToken": "garbage"}"#.to_vec(),
            )
            .await,
            "NotAuthorizedException",
        ),
    ];
    for (response, expected) in cases {
        let response = response.expect("request");
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()["x-amzn-errortype"], expected);
        let body: Value = response.json().await.expect("json");
        assert_eq!(error_type(&body), expected, "{body}");
    }
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/", app.base))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-amz-target")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*", "browser apps can call the pool");
    app.stop().await;
}

#[tokio::test]
async fn rotated_keys_stay_published_until_their_tokens_expire() {
    let app = TestApp::spawn().await;
    let before = app.signed_in_user("rotor", PASSWORD).await;
    let pool = std::sync::Arc::clone(app.identity.pool_named("default").expect("pool"));
    let new_kid = pool.rotate_key().await.expect("rotate");
    let jwks: Value = app
        .http
        .get(format!("{}/{}/.well-known/jwks.json", app.base, app.pool_id))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    assert_eq!(jwks["keys"].as_array().expect("keys").len(), 2);
    let old_access = before["AuthenticationResult"]["AccessToken"].clone();
    let (status, _) = app.cognito("GetUser", json!({"AccessToken": old_access})).await;
    assert_eq!(status, 200, "tokens of the retired key still verify");
    let after = app.sign_in("rotor", PASSWORD).await;
    let header =
        jsonwebtoken::decode_header(after["AuthenticationResult"]["AccessToken"].as_str().expect("token"))
            .expect("header");
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    app.stop().await;
}

#[tokio::test]
async fn deleting_oneself_ends_every_session() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in_user("temp", PASSWORD).await;
    let access = tokens["AuthenticationResult"]["AccessToken"].clone();
    let (status, _) = app
        .cognito(
            "UpdateUserAttributes",
            json!({"AccessToken": access, "UserAttributes": [{"Name": "name", "Value": "Temporary"}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, user) = app.cognito("GetUser", json!({"AccessToken": access})).await;
    assert!(
        user["UserAttributes"]
            .as_array()
            .expect("attributes")
            .contains(&json!({"Name": "name", "Value": "Temporary"}))
    );
    let (status, _) = app.cognito("DeleteUser", json!({"AccessToken": access})).await;
    assert_eq!(status, 200);
    let (status, body) = app.cognito("GetUser", json!({"AccessToken": access})).await;
    assert_eq!((status, error_type(&body)), (400, "NotAuthorizedException"));
    let (status, _) = app
        .cognito("SignUp", json!({"ClientId": app.client_id, "Username": "temp", "Password": PASSWORD, "UserAttributes": [{"Name": "email", "Value": "temp@example.com"}]}))
        .await;
    assert_eq!(status, 200, "the username is free again");
    app.stop().await;
}

#[tokio::test]
async fn the_issuer_follows_the_configured_public_url() {
    let app = TestApp::spawn_with(
        |config| config.server.public_url = Some("https://auth.example.test/".into()),
        |_| {},
    )
    .await;
    let pool = app.identity.pool_named("default").expect("pool");
    assert_eq!(pool.issuer(), format!("https://auth.example.test/{}", app.pool_id));
    let discovery: Value = app
        .http
        .get(format!("{}/{}/.well-known/openid-configuration", app.base, app.pool_id))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(
        discovery["jwks_uri"],
        format!("https://auth.example.test/{}/.well-known/jwks.json", app.pool_id)
    );
    let missing = app
        .http
        .get(format!("{}/us-east-1_NotAPool1/.well-known/jwks.json", app.base))
        .send()
        .await
        .expect("jwks");
    assert_eq!(missing.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn requests_are_throttled_per_client_address() {
    let app = TestApp::spawn_with(|config| config.identity.requests_per_address_per_minute = 5, |_| {}).await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let (_, body) = app
            .cognito("ForgotPassword", json!({"ClientId": app.client_id, "Username": format!("user")}))
            .await;
        statuses.push(error_type(&body).to_owned());
    }
    assert!(statuses[..5].iter().all(String::is_empty), "{statuses:?}");
    assert_eq!(statuses[5..], ["TooManyRequestsException"; 2]);
    app.stop().await;
}
