//! The built-in flows: appointment booking, lead qualification, and a
//! support FAQ answered from a knowledge base.

/// Appointment booking: reason, day and time, name, a callback number,
/// an availability check, confirmation.
pub const APPOINTMENT_BOOKING: &str = include_str!("templates/appointment_booking.json");
/// Lead qualification: interest, company size, budget, timeline; hot
/// leads go to sales.
pub const LEAD_QUALIFICATION: &str = include_str!("templates/lead_qualification.json");
/// Support FAQ: questions answered from the knowledge base
/// ([`SUPPORT_FAQ_KB`]), a person when it has no answer or the caller is upset.
pub const SUPPORT_FAQ: &str = include_str!("templates/support_faq.json");
/// The knowledge base behind [`SUPPORT_FAQ`] (Markdown, one topic per section).
pub const SUPPORT_FAQ_KB: &str = include_str!("templates/support_faq_kb.md");

/// Every built-in flow: (name, JSON document).
pub fn templates() -> Vec<(&'static str, &'static str)> {
    vec![
        ("appointment_booking", APPOINTMENT_BOOKING),
        ("lead_qualification", LEAD_QUALIFICATION),
        ("support_faq", SUPPORT_FAQ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brain::flow::{validate, Flow};

    #[test]
    fn every_template_validates_without_problems() {
        for (name, json) in templates() {
            let flow = Flow::from_json(json).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(flow.id, name);
            assert_eq!(validate(&flow), vec![], "{name}");
            // And survives a round trip through the public format.
            let again = Flow::from_json(&flow.to_json()).expect("round trip");
            assert_eq!(again, flow, "{name}");
        }
        assert!(SUPPORT_FAQ_KB.contains("## Resetting your password"));
    }
}
