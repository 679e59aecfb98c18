//! The fake Kubernetes API server: the HTTP front ([`server`]) over the object
//! [`store`], the served [`resources`] and their schema checks, label and field
//! [`selectors`], and the shapes of lists ([`listing`]: pages, kubectl's Table). It keeps
//! objects as JSON so that unknown fields round-trip, as a real API server does.

pub mod listing;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod store;
