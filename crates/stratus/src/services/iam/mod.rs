//! IAM (identity policies): decides whether a request — an action on a resource, with the
//! condition keys of its context — is allowed by a set of policies, the way AWS decides it: an
//! explicit Deny beats any Allow, an Allow beats the implicit deny, and nothing is allowed that
//! no statement allows. The S3-compatible endpoint asks it for every operation, with the
//! temporary credentials' role policies.
//!
//! Our own module, not a crate: the IAM crates that exist let an Allow beat a Deny, substitute
//! `""` for a missing variable, or skip variables in conditions; each of those would let one
//! user reach another's folder.

mod condition;
mod config;
mod context;
mod pattern;
mod policy;

pub use config::{IamConfig, RoleConfig};
pub use context::Context;
pub use policy::{Policy, PolicyError};

use std::collections::BTreeMap;
use std::path::PathBuf;

use pattern::{Compare, Unresolved};
use policy::{Effect, Matcher, Statement};

/// The identity pools' default roles and the policy the authenticated one has.
pub const DEFAULT_AUTHENTICATED_ROLE: &str = "Cognito_DefaultAuthenticated";
pub const DEFAULT_UNAUTHENTICATED_ROLE: &str = "Cognito_DefaultUnauthenticated";
const OWN_FOLDER_POLICY: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/own-folder.json"));
/// The todos API for routes `[gateway.authorization]` gives to `iam`; the API itself holds each
/// user to their own todos.
const INVOKE_TODOS_POLICY: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/invoke-todos.json"));

/// A role's policy file could not be used: start-up stops, naming the file and the statement.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    #[error("cannot read the policy file {} of role `{role}`", path.display())]
    Read {
        role: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("role `{role}`: {source}")]
    Policy {
        role: String,
        #[source]
        source: PolicyError,
    },
}

/// The stage's roles and their policies, read once at start-up.
#[derive(Debug)]
pub struct Iam {
    account: String,
    roles: BTreeMap<String, Vec<Policy>>,
}

impl Iam {
    /// Reads every role's policy files (relative paths from the working directory).
    pub fn load(config: &IamConfig) -> Result<Self, IamError> {
        let parse = |role: &str, name: &str, json: &str| {
            Policy::parse(name, json).map_err(|source| IamError::Policy { role: role.to_owned(), source })
        };
        let mut roles = BTreeMap::from([
            (
                DEFAULT_AUTHENTICATED_ROLE.to_owned(),
                vec![
                    parse(DEFAULT_AUTHENTICATED_ROLE, "own-folder (built in)", OWN_FOLDER_POLICY)?,
                    parse(DEFAULT_AUTHENTICATED_ROLE, "invoke-todos (built in)", INVOKE_TODOS_POLICY)?,
                ],
            ),
            (DEFAULT_UNAUTHENTICATED_ROLE.to_owned(), Vec::new()),
        ]);
        for (role, settings) in &config.roles {
            let mut policies = Vec::new();
            for file in &settings.policy_files {
                let path = file.clone();
                let json = std::fs::read_to_string(&path).map_err(|source| IamError::Read {
                    role: role.clone(),
                    path: path.clone(),
                    source,
                })?;
                policies.push(parse(role, &path.display().to_string(), &json)?);
            }
            roles.insert(role.clone(), policies);
        }
        Ok(Self { account: config.account.clone(), roles })
    }

    /// The account in the stage's ARNs.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// What the policies of the role `role_arn` decide for `request`; a role this stage does not
    /// have is allowed nothing.
    pub fn decide(&self, role_arn: &str, request: Request<'_>) -> Decision {
        evaluate(self.policies(role_arn).unwrap_or_default(), request)
    }

    /// The policies of the role an ARN names; `None` for a role this stage does not have.
    pub fn policies(&self, role_arn: &str) -> Option<&[Policy]> {
        let name = role_arn.strip_prefix(&format!("arn:aws:iam::{}:role/", self.account))?;
        self.roles.get(name).map(Vec::as_slice)
    }
}

impl IamConfig {
    /// Whether `role_arn` names a role of this stage (a built-in one or a configured one).
    pub fn has_role(&self, role_arn: &str) -> bool {
        role_arn.strip_prefix(&format!("arn:aws:iam::{}:role/", self.account)).is_some_and(|name| {
            name == DEFAULT_AUTHENTICATED_ROLE
                || name == DEFAULT_UNAUTHENTICATED_ROLE
                || self.roles.contains_key(name)
        })
    }
}

/// What is asked: `s3:GetObject` on `arn:aws:s3:::bucket/key`, in a context.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub context: &'a Context,
}

/// The statement that decided, for the log: "policy `own-folder`, statement 2 (Sid `ReadWrite`)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deciding {
    pub policy: String,
    pub statement: usize,
    pub sid: Option<String>,
}

impl std::fmt::Display for Deciding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "policy `{}`, statement {}", self.policy, self.statement + 1)?;
        match &self.sid {
            Some(sid) => write!(f, " (Sid `{sid}`)"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Deciding),
    /// An explicit Deny.
    Deny(Deciding),
    /// No statement allowed it.
    ImplicitDeny,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow(_))
    }
}

/// Evaluates `request` against every statement of `policies`.
pub fn evaluate(policies: &[Policy], request: Request<'_>) -> Decision {
    let mut allowed = None;
    for policy in policies {
        for statement in &policy.statements {
            if !applies(statement, request) {
                continue;
            }
            let deciding = || Deciding {
                policy: policy.name.clone(),
                statement: statement.index,
                sid: statement.sid.clone(),
            };
            match statement.effect {
                Effect::Deny => return Decision::Deny(deciding()),
                Effect::Allow if allowed.is_none() => allowed = Some(deciding()),
                Effect::Allow => {}
            }
        }
    }
    allowed.map_or(Decision::ImplicitDeny, Decision::Allow)
}

/// Whether the statement covers the request: action, resource and every condition. A variable
/// the request cannot resolve makes it not apply, whichever its effect.
fn applies(statement: &Statement, request: Request<'_>) -> bool {
    let check = || -> Result<bool, Unresolved> {
        Ok(matches(&statement.actions, request.action, true, request.context)?
            && matches(&statement.resources, request.resource, false, request.context)?
            && all_hold(statement, request.context)?)
    };
    check().unwrap_or(false)
}

fn all_hold(statement: &Statement, context: &Context) -> Result<bool, Unresolved> {
    for condition in &statement.conditions {
        if !condition.holds(context)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Actions compare case-insensitively (`s3:getobject` is `s3:GetObject`), resources exactly.
fn matches(matcher: &Matcher, value: &str, ignore_case: bool, context: &Context) -> Result<bool, Unresolved> {
    let mut any = false;
    for pattern in matcher.patterns() {
        if pattern.matches(value, Compare::Wildcards, ignore_case, context)? {
            any = true;
            break;
        }
    }
    Ok(any != matcher.inverted())
}

#[cfg(test)]
mod tests;
