//! The edge as the outermost service: hits never reach the router.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use futures::future::{Either, Ready, ready};
use tower::Service;

use super::Edge;

#[derive(Debug, Clone)]
pub(super) struct Front<S> {
    edge: Arc<Edge>,
    origin: S,
}

impl<S> Front<S> {
    pub(super) fn new(edge: Arc<Edge>, origin: S) -> Self {
        Self { edge, origin }
    }
}

impl<S> Service<Request> for Front<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The origin is a router behind stateless layers, always ready, so answering a hit
        // instead never strands a reservation.
        self.origin.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.edge.answer_from_memory(request.method(), request.uri(), request.headers()) {
            Some(response) => Either::Left(ready(Ok(response))),
            None => Either::Right(self.origin.call(request)),
        }
    }
}
