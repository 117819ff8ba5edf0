//! What a component is installed with, and how installing it can fail. A component (the blog,
//! photos, the edge, and later the others) opens itself from the stage's platform, registers its
//! functions with their triggers on the host, and hands back its HTTP routes; `app` only lists
//! the components.

use std::sync::Arc;

use crate::platform::Platform;
use crate::ports::stream::StreamConfig;
use crate::services::cognito::authorizer::Authorizer;
use crate::services::functions::{FunctionsConfig, Host, HostError};

/// The shared dependencies every component is installed with.
#[derive(Debug)]
pub(crate) struct Installer<'a> {
    pub platform: &'a Platform,
    /// Where the component registers its functions.
    pub host: &'a mut Host,
    /// Checks access tokens for the component's HTTP functions.
    pub authorizer: &'a Arc<Authorizer>,
    /// The URL clients reach the server at (links, feeds, presigned URLs).
    pub public_url: &'a str,
    /// Batching and retries of the component's stream and object triggers.
    pub stream: &'a StreamConfig,
    /// Limits of the component's HTTP functions.
    pub functions: &'a FunctionsConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot open the {component}")]
    Open {
        component: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Host(#[from] HostError),
}

impl InstallError {
    pub fn open(component: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Open { component, source: Box::new(source) }
    }
}
