//! The evaluator against a table of cases: each names the request and the decision AWS makes.

use super::*;

const SUB: &str = "cognito-identity.amazonaws.com:sub";
const ALICE: &str = "us-east-1:0b6a1c52-7d3e-4f1a-9c8e-2f4d5a6b7c8d";

/// The own-folder policy of the user bucket, as the default authenticated role has it.
const OWN_FOLDER: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ListOwnFolder",
      "Effect": "Allow",
      "Action": "s3:ListBucket",
      "Resource": "arn:aws:s3:::user-files",
      "Condition": {"StringLike": {"s3:prefix": ["${cognito-identity.amazonaws.com:sub}/*"]}}
    },
    {
      "Sid": "ReadWriteOwnObjects",
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                 "s3:ListMultipartUploadParts"],
      "Resource": "arn:aws:s3:::user-files/${cognito-identity.amazonaws.com:sub}/*"
    }
  ]
}"#;

fn policy(json: &str) -> Policy {
    Policy::parse("test", json).expect("a valid policy")
}

/// A policy allowing `action` on everything when `condition` (a Condition block) holds.
fn allowing_if(action: &str, condition: &str) -> Policy {
    policy(&format!(
        r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow", "Action": "{action}",
             "Resource": "*", "Condition": {condition}}}}}"#
    ))
}

fn object(key: &str) -> String {
    format!("arn:aws:s3:::user-files/{key}")
}

fn decide(policies: &[Policy], action: &str, resource: &str, context: &Context) -> Decision {
    evaluate(policies, Request { action, resource, context })
}

fn allowed(policies: &[Policy], action: &str, resource: &str, context: &Context) -> bool {
    decide(policies, action, resource, context).is_allowed()
}

#[test]
fn the_own_folder_policy_allows_only_the_callers_folder() {
    let policies = [policy(OWN_FOLDER)];
    let alice = Context::default().with(SUB, ALICE);
    let bob_id = "us-east-1:5e0c9a7b-1111-4c2d-8e9f-000000000000";
    // Alice's id has a colon; it is one literal value, not an ARN separator.
    assert!(allowed(&policies, "s3:GetObject", &object(&format!("{ALICE}/notes.txt")), &alice));
    assert!(allowed(&policies, "s3:PutObject", &object(&format!("{ALICE}/a/b/c.jpg")), &alice));
    assert!(
        allowed(&policies, "s3:getobject", &object(&format!("{ALICE}/x")), &alice),
        "actions ignore case"
    );
    for action in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"] {
        assert!(!allowed(&policies, action, &object(&format!("{bob_id}/x")), &alice), "{action} on Bob's");
    }
    // A prefix of another id is not that id's folder.
    assert!(!allowed(&policies, "s3:GetObject", &object(&format!("{ALICE}x/secret")), &alice));
    assert!(!allowed(&policies, "s3:GetObject", &object(ALICE), &alice), "the folder itself is no object");
    // Keys are opaque text, as in S3: `..` is two dots, and stays inside Alice's prefix; the
    // endpoint never resolves it to another key.
    assert!(allowed(&policies, "s3:GetObject", &object(&format!("{ALICE}/../{bob_id}/x")), &alice));
    assert!(!allowed(&policies, "s3:GetObject", &object(&format!("%2e%2e/{bob_id}/x")), &alice));
    // Resources compare exactly: another bucket, or a case variant, is not the folder.
    assert!(!allowed(&policies, "s3:GetObject", &format!("arn:aws:s3:::site/{ALICE}/x"), &alice));
    assert!(!allowed(&policies, "s3:GetObject", &object(&format!("{}/x", ALICE.to_uppercase())), &alice));
    assert!(!allowed(&policies, "s3:DeleteBucket", "arn:aws:s3:::user-files", &alice));
}

#[test]
fn listing_needs_a_prefix_inside_the_callers_folder() {
    let policies = [policy(OWN_FOLDER)];
    let bucket = "arn:aws:s3:::user-files";
    let listing = |prefix: Option<&str>| {
        let context = Context::default().with(SUB, ALICE);
        let context = match prefix {
            Some(prefix) => context.with("s3:prefix", prefix),
            None => context,
        };
        allowed(&policies, "s3:ListBucket", bucket, &context)
    };
    assert!(listing(Some(&format!("{ALICE}/"))));
    assert!(listing(Some(&format!("{ALICE}/photos/"))));
    assert!(!listing(None), "ListObjectsV2 without a prefix lists everyone's keys");
    assert!(!listing(Some("")), "an empty prefix is everyone's");
    assert!(!listing(Some(ALICE)), "the id without its slash also matches another id it prefixes");
    assert!(!listing(Some("us-east-1:")));
}

#[test]
fn an_unresolvable_variable_makes_its_statement_not_apply_never_an_empty_string() {
    let policies = [policy(OWN_FOLDER)];
    // No identity in the context: `${…:sub}/*` must not become `/*`.
    let anonymous = Context::default();
    assert_eq!(decide(&policies, "s3:GetObject", &object("/x"), &anonymous), Decision::ImplicitDeny);
    assert_eq!(decide(&policies, "s3:GetObject", &object("x"), &anonymous), Decision::ImplicitDeny);
    // A set-valued key is no variable either.
    let set = Context::default().with_set(SUB, [ALICE.to_owned()]);
    assert_eq!(
        decide(&policies, "s3:GetObject", &object(&format!("{ALICE}/x")), &set),
        Decision::ImplicitDeny
    );
    // With a default, the default stands in.
    let defaulted = policy(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::user-files/${aws:username, 'public'}/*"}}"#,
    );
    assert!(allowed(&[defaulted], "s3:GetObject", &object("public/x"), &anonymous));
}

#[test]
fn an_explicit_deny_wins_in_either_order_and_across_policies() {
    let allow = r#"{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}"#;
    let deny = r#"{"Sid": "NoDeletes", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"}"#;
    let context = Context::default();
    for statements in [format!("[{allow}, {deny}]"), format!("[{deny}, {allow}]")] {
        let policies = [policy(&format!(r#"{{"Version": "2012-10-17", "Statement": {statements}}}"#))];
        let decision = decide(&policies, "s3:DeleteObject", &object("x"), &context);
        let Decision::Deny(deciding) = decision else { panic!("{statements}: {decision:?}") };
        assert_eq!(deciding.sid.as_deref(), Some("NoDeletes"));
        assert!(allowed(&policies, "s3:GetObject", &object("x"), &context));
    }
    let split = [
        policy(&format!(r#"{{"Version": "2012-10-17", "Statement": {allow}}}"#)),
        policy(&format!(r#"{{"Version": "2012-10-17", "Statement": {deny}}}"#)),
    ];
    assert!(matches!(decide(&split, "s3:DeleteObject", &object("x"), &context), Decision::Deny(_)));
    assert_eq!(decide(&[], "s3:GetObject", &object("x"), &context), Decision::ImplicitDeny);
}

#[test]
fn not_action_and_not_resource_match_what_their_patterns_do_not() {
    let policies = [policy(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "NotAction": "s3:Delete*", "Resource": "arn:aws:s3:::user-files/*"},
            {"Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::user-files", "arn:aws:s3:::user-files/*"]}
        ]}"#,
    )];
    let context = Context::default();
    assert!(allowed(&policies, "s3:GetObject", &object("a"), &context));
    assert!(!allowed(&policies, "s3:DeleteObject", &object("a"), &context));
    assert!(matches!(decide(&policies, "s3:GetObject", "arn:aws:s3:::site/a", &context), Decision::Deny(_)));
}

#[test]
fn conditions_follow_awss_rules_for_missing_keys_if_exists_and_null() {
    let with = |condition: &str| [allowing_if("s3:ListBucket", condition)];
    let empty = Context::default();
    let small = Context::default().with("s3:max-keys", "10").with("s3:delimiter", "/");
    let big = Context::default().with("s3:max-keys", "5000");
    let list = |policies: &[Policy], context: &Context| {
        allowed(policies, "s3:ListBucket", "arn:aws:s3:::b", context)
    };

    let at_most = with(r#"{"NumericLessThanEquals": {"s3:max-keys": "1000"}}"#);
    assert!(list(&at_most, &small) && !list(&at_most, &big));
    assert!(!list(&at_most, &empty), "a missing key fails a positive operator");
    let if_exists = with(r#"{"NumericLessThanEqualsIfExists": {"s3:max-keys": "1000"}}"#);
    assert!(list(&if_exists, &empty) && list(&if_exists, &small) && !list(&if_exists, &big));
    let not_slash = with(r#"{"StringNotEquals": {"s3:delimiter": "/"}}"#);
    assert!(list(&not_slash, &empty), "a missing key passes a negated operator");
    assert!(!list(&not_slash, &small));
    let not_like = with(r#"{"StringNotLike": {"s3:delimiter": ["/", "|"]}}"#);
    assert!(!list(&not_like, &small) && list(&not_like, &Context::default().with("s3:delimiter", "-")));
    let absent = with(r#"{"Null": {"s3:delimiter": "true"}}"#);
    assert!(list(&absent, &empty) && !list(&absent, &small));
    let present = with(r#"{"Null": {"s3:delimiter": false}}"#);
    assert!(!list(&present, &empty) && list(&present, &small));
    let both = with(r#"{"StringEquals": {"s3:delimiter": "/"}, "NumericLessThan": {"s3:max-keys": 100}}"#);
    assert!(list(&both, &small) && !list(&both, &Context::default().with("s3:delimiter", "/")));
    let keys_ignore_case = with(r#"{"StringEquals": {"S3:Delimiter": "/"}}"#);
    assert!(list(&keys_ignore_case, &small), "condition keys compare case-insensitively");
}

#[test]
fn set_operators_over_multivalued_keys() {
    let with = |condition: &str| [allowing_if("s3:GetObject", condition)];
    let amr = |values: &[&str]| {
        Context::default()
            .with_set("cognito-identity.amazonaws.com:amr", values.iter().map(|v| (*v).to_owned()))
    };
    let get =
        |policies: &[Policy], context: &Context| allowed(policies, "s3:GetObject", &object("x"), context);
    let any = with(r#"{"ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "authenticated"}}"#);
    assert!(get(&any, &amr(&["authenticated", "cognito-idp.us-east-1.amazonaws.com/pool"])));
    assert!(!get(&any, &amr(&["unauthenticated"])));
    assert!(!get(&any, &Context::default()), "ForAnyValue fails on an absent set");
    assert!(!get(&any, &amr(&[])), "and on an empty one");
    let all = with(
        r#"{"ForAllValues:StringEquals": {"cognito-identity.amazonaws.com:amr": ["authenticated", "x"]}}"#,
    );
    assert!(get(&all, &amr(&["authenticated", "x"])));
    assert!(!get(&all, &amr(&["authenticated", "other"])));
    assert!(get(&all, &Context::default()), "ForAllValues passes on an absent set");
}

#[test]
fn variables_apply_in_condition_values_and_only_under_the_2012_version() {
    let listing = |version: &str| {
        [policy(&format!(
            r#"{{"Version": "{version}", "Statement": {{"Effect": "Allow", "Action": "s3:ListBucket",
                 "Resource": "arn:aws:s3:::user-files",
                 "Condition": {{"StringLike": {{"s3:prefix": "${{{SUB}}}/*"}}}}}}}}"#
        ))]
    };
    let context = Context::default().with(SUB, ALICE).with("s3:prefix", format!("{ALICE}/docs/"));
    assert!(allowed(&listing("2012-10-17"), "s3:ListBucket", "arn:aws:s3:::user-files", &context));
    assert!(!allowed(&listing("2008-10-17"), "s3:ListBucket", "arn:aws:s3:::user-files", &context));
    let literal = Context::default().with(SUB, ALICE).with("s3:prefix", format!("${{{SUB}}}/docs/"));
    assert!(allowed(&listing("2008-10-17"), "s3:ListBucket", "arn:aws:s3:::user-files", &literal));
}

#[test]
fn dates_bools_and_arns_compare_by_their_kind() {
    let with = |condition: &str| [allowing_if("s3:GetObject", condition)];
    let get =
        |policies: &[Policy], context: &Context| allowed(policies, "s3:GetObject", &object("x"), context);
    let before = with(r#"{"DateLessThan": {"aws:CurrentTime": "2027-01-01T00:00:00Z"}}"#);
    assert!(get(&before, &Context::default().with("aws:CurrentTime", "2026-12-03T12:00:00Z")));
    assert!(!get(&before, &Context::default().with("aws:CurrentTime", "2027-06-01T00:00:00Z")));
    assert!(get(&before, &Context::default().with("aws:CurrentTime", "1798761599")), "epoch seconds");
    let by_day = with(r#"{"DateGreaterThanEquals": {"aws:CurrentTime": "2026-12-03"}}"#);
    assert!(get(&by_day, &Context::default().with("aws:CurrentTime", "2026-12-03T00:00:00Z")));
    let tls = with(r#"{"Bool": {"aws:SecureTransport": true}}"#);
    assert!(get(&tls, &Context::default().with("aws:SecureTransport", "true")));
    assert!(!get(&tls, &Context::default().with("aws:SecureTransport", "false")));
    let role = with(r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Cognito_*"}}"#);
    let arn = |value: &str| Context::default().with("aws:PrincipalArn", value);
    assert!(get(&role, &arn("arn:aws:iam::000000000000:role/Cognito_Authenticated")));
    assert!(!get(&role, &arn("arn:aws:iam::000000000000:user/Cognito_Authenticated")));
    assert!(!get(&role, &arn("not-an-arn")));
}

#[test]
fn a_malformed_policy_is_refused_naming_the_statement() {
    let refused = |json: &str| Policy::parse("authenticated.json", json).expect_err("refused").to_string();
    let message = refused(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Sid": "Broken", "Effect": "allow", "Action": "s3:GetObject", "Resource": "*"}]}"#,
    );
    assert!(
        message.contains("authenticated.json") && message.contains("statement 2 (Sid `Broken`)"),
        "{message}"
    );
    assert!(message.contains("Effect"), "{message}");
    let cases = [
        (r#"{"Statement": []"#, "is not JSON"),
        (r#"{"Version": "2012-10-17"}"#, "needs a Statement"),
        (r#"{"Version": "2020-01-01", "Statement": []}"#, "Version"),
        (r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Resource": "*"}}"#, "needs Action"),
        (
            r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "a", "NotAction": "b", "Resource": "*"}}"#,
            "both Action and NotAction",
        ),
        (
            r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "a/${x"}}"#,
            "unterminated",
        ),
        (
            r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
                "Condition": {"StringSorta": {"s3:prefix": "a"}}}}"#,
            "`StringSorta` is not a condition operator",
        ),
        (
            r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
                "Principal": "*"}}"#,
            "Principal",
        ),
        (
            r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
                "Condtion": {}}}"#,
            "unknown element `Condtion`",
        ),
    ];
    for (json, expected) in cases {
        let message = refused(json);
        assert!(message.contains(expected), "{json}: {message}");
    }
}

#[test]
fn the_built_in_authenticated_role_holds_users_to_their_folder_and_guests_get_nothing() {
    let iam = Iam::load(&IamConfig::default()).expect("built-in roles");
    let authenticated =
        iam.policies("arn:aws:iam::000000000000:role/Cognito_DefaultAuthenticated").expect("role");
    let alice = Context::default().with(SUB, ALICE);
    assert!(allowed(authenticated, "s3:PutObject", &object(&format!("{ALICE}/todo.json")), &alice));
    assert!(!allowed(authenticated, "s3:PutObject", &object("someone-else/todo.json"), &alice));
    let guest = iam.policies("arn:aws:iam::000000000000:role/Cognito_DefaultUnauthenticated").expect("role");
    assert!(!allowed(guest, "s3:GetObject", &object(&format!("{ALICE}/todo.json")), &alice));
    assert!(
        iam.policies("arn:aws:iam::999999999999:role/Cognito_DefaultAuthenticated").is_none(),
        "another account"
    );
    assert!(iam.policies("arn:aws:iam::000000000000:role/Unknown").is_none());
}

#[test]
fn a_missing_policy_file_is_named() {
    let mut config = IamConfig::default();
    config.roles.insert("Todo".into(), RoleConfig { policy_files: vec!["/nonexistent/todo.json".into()] });
    let message = Iam::load(&config).expect_err("refused").to_string();
    assert!(message.contains("/nonexistent/todo.json") && message.contains("`Todo`"), "{message}");
}
