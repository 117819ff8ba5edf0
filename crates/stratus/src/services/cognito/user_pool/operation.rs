//! The operations of Cognito's user-pool API that Stratus serves, parsed from `X-Amz-Target`.
//! Who may call one is in its type: a `Public` operation is unsigned (its caller proves who it
//! is with a password, a code or a token in the body), an `Operator` one must carry the
//! operator's SigV4 signature. A new operation has to be listed under one of the two, and the
//! router's matches are exhaustive, so it can never be served unsigned by accident.

/// Defines an enum of operations named exactly as in `X-Amz-Target`, with the list of all.
macro_rules! operations {
    ($(#[$meta:meta])* $name:ident { $($operation:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($operation),+ }

        impl $name {
            pub const ALL: &[Self] = &[$(Self::$operation),+];

            /// The name in `X-Amz-Target` after `AWSCognitoIdentityProviderService.`.
            pub fn name(self) -> &'static str {
                match self { $(Self::$operation => stringify!($operation)),+ }
            }
        }
    };
}

operations! {
    /// Operations any client may call.
    PublicOperation {
        SignUp,
        ConfirmSignUp,
        ResendConfirmationCode,
        InitiateAuth,
        RespondToAuthChallenge,
        AssociateSoftwareToken,
        VerifySoftwareToken,
        SetUserMFAPreference,
        GetUser,
        UpdateUserAttributes,
        ChangePassword,
        ForgotPassword,
        ConfirmForgotPassword,
        GlobalSignOut,
        RevokeToken,
        DeleteUser,
    }
}

operations! {
    /// Operations only the operator may call, with a SigV4-signed request.
    OperatorOperation {
        AdminCreateUser,
        AdminSetUserPassword,
        AdminGetUser,
        AdminDeleteUser,
        AdminDisableUser,
        AdminEnableUser,
        AdminAddUserToGroup,
        AdminRemoveUserFromGroup,
        ListUsers,
        CreateGroup,
        ListGroups,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Public(PublicOperation),
    Operator(OperatorOperation),
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// A request signed with the operator credentials.
    Operator,
}

impl Operation {
    /// The operation named `name`, or `None` for one Stratus does not serve.
    pub fn parse(name: &str) -> Option<Self> {
        let public = PublicOperation::ALL.iter().find(|operation| operation.name() == name);
        let operator = OperatorOperation::ALL.iter().find(|operation| operation.name() == name);
        public.copied().map(Self::Public).or_else(|| operator.copied().map(Self::Operator))
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Public(operation) => operation.name(),
            Self::Operator(operation) => operation.name(),
        }
    }

    pub fn access(self) -> Access {
        match self {
            Self::Public(_) => Access::Public,
            Self::Operator(_) => Access::Operator,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_parses_from_its_name_and_no_other() {
        let names = PublicOperation::ALL
            .iter()
            .map(|operation| Operation::Public(*operation))
            .chain(OperatorOperation::ALL.iter().map(|operation| Operation::Operator(*operation)));
        for operation in names {
            assert_eq!(Operation::parse(operation.name()), Some(operation));
        }
        assert_eq!(Operation::parse("adminGetUser"), None);
        assert_eq!(Operation::parse("AdminGetUserX"), None);
        assert_eq!(Operation::parse(""), None);
    }

    #[test]
    fn what_changes_other_users_or_lists_them_needs_the_operator() {
        for name in ["AdminCreateUser", "AdminGetUser", "ListUsers", "CreateGroup", "ListGroups"] {
            let operation = Operation::parse(name).expect("served");
            assert_eq!(operation.access(), Access::Operator, "{name}");
        }
        let sign_up = Operation::parse("SignUp").expect("served");
        assert_eq!(sign_up.access(), Access::Public);
    }
}
