//! Every function of the apps, by name, with its trigger: the one list the local host installs
//! from, the Lambda entry point dispatches on (`_HANDLER` is a name here) and the SAM template
//! deploys (stratus-aws checks the template against it).

/// What invokes a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// HTTP requests to the apps' APIs (API Gateway on AWS).
    Http,
    /// Changes of a table that pass an event filter (Lambda's `FilterCriteria` pattern).
    TableChanges { table: &'static str, filter: &'static str },
    /// New objects under a prefix of a bucket (the code's name for the bucket).
    ObjectCreated { bucket: &'static str, prefix: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionSpec {
    pub name: &'static str,
    pub trigger: Trigger,
}

impl FunctionSpec {
    /// The event filter of a table-change function; every change for others.
    pub fn filter(&self) -> Option<&'static str> {
        match self.trigger {
            Trigger::TableChanges { filter, .. } => Some(filter),
            _ => None,
        }
    }

    /// The key prefix of an object function.
    pub fn prefix(&self) -> Option<&'static str> {
        match self.trigger {
            Trigger::ObjectCreated { prefix, .. } => Some(prefix),
            _ => None,
        }
    }
}

/// The REST APIs of every app.
pub const API: FunctionSpec = FunctionSpec { name: "api", trigger: Trigger::Http };

/// Renders the blog's pages when a post changes.
pub const SITE_GENERATOR: FunctionSpec = FunctionSpec {
    name: "site-generator",
    trigger: Trigger::TableChanges {
        table: "blog",
        filter: r#"{"dynamodb": {"Keys": {"sk": {"S": ["POST"]}}}}"#,
    },
};

/// Welcomes a new subscriber by email.
pub const WELCOME_EMAIL: FunctionSpec = FunctionSpec {
    name: "welcome-email",
    trigger: Trigger::TableChanges {
        table: "blog",
        filter: r#"{"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": ["SUBSCRIBER"]}}}}"#,
    },
};

/// Makes the thumbnails of an uploaded photo.
pub const THUMBNAIL: FunctionSpec = FunctionSpec {
    name: "thumbnail",
    trigger: Trigger::ObjectCreated { bucket: "media", prefix: "photos/" },
};

pub const FUNCTIONS: [FunctionSpec; 4] = [API, SITE_GENERATOR, WELCOME_EMAIL, THUMBNAIL];

/// The function called `name`.
pub fn find(name: &str) -> Option<FunctionSpec> {
    FUNCTIONS.into_iter().find(|function| function.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::stream::EventFilter;

    #[test]
    fn names_are_unique_and_filters_parse() {
        for (position, function) in FUNCTIONS.iter().enumerate() {
            assert!(
                FUNCTIONS[..position].iter().all(|other| other.name != function.name),
                "{}",
                function.name
            );
            if let Some(filter) = function.filter() {
                EventFilter::parse(filter).unwrap_or_else(|e| panic!("{}: {e}", function.name));
            }
        }
        assert_eq!(find("thumbnail"), Some(THUMBNAIL));
        assert_eq!(find("nope"), None);
    }
}
