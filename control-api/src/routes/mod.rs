//! The `/v1` resources, one module each.

pub mod agents;
pub mod analytics;
pub mod calls;
pub mod campaigns;
pub mod flows;
pub mod keys;
pub mod live;
pub mod numbers;
pub mod system;
pub mod voices;
pub mod webhooks;
