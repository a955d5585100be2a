//! Campaign logic without I/O: the campaign document ([`spec`]), contact
//! lists ([`contacts`]), calling hours ([`schedule`]) and A/B statistics
//! ([`ab`]). The routes (`routes::campaigns`) and the dialer (`dialer`)
//! bring the database, the engine and the clock.

pub mod ab;
pub mod contacts;
pub mod schedule;
pub mod spec;
pub mod status;

pub use spec::CampaignSpec;
pub use status::{CampaignStatus, ContactStatus};
