//! Fair claiming: which due notifications a claim takes, so that one subscription's backlog or
//! one client's many subscriptions cannot take every delivery slot.
//!
//! A claim first reads one [`Candidate`] per subscription that has pending rows
//! ([`CANDIDATES_SQL`]: a skip scan over `notifications_pending_subscription`, three index
//! seeks per subscription, whatever its backlog), then [`plan`] hands out the free slots round
//! by round, one per subscription per round, oldest due first, within the caps of
//! [`ClaimLimits`]; only then are the chosen rows leased. The rows in flight are counted from
//! the table (leased and unexpired), so the caps hold over every process sharing the database,
//! except that two processes planning at the same instant may each take a subscription's
//! remaining share (at most one claim's worth over the cap).
//!
//! What this gives: a subscription whose endpoint takes 9 s holds at most `per_subscription`
//! slots, and every other subscription's notification is claimed as soon as a slot is free;
//! a relay subscription (one that matches messages by `types` and sends to Viber, DESIGN §12)
//! has its own cap, `per_relay_subscription`: its endpoint is the operator's Viber API
//! (`--viber-base-url`), not an address a client chose, and one such subscription carries every
//! message of a bot, so a cap of a few slots would be the relay's ceiling (issue #22: 16 in
//! flight held it to ~2 400 messages/s). The per-client share still holds it, so the other
//! clients keep their slots, and every webhook keeps `per_subscription` (issue #18);
//! a client with many slow subscriptions holds at most `per_client` slots, the rest stay for
//! the others. A slot is never left idle while some subscription within its caps has a due row.

use std::collections::HashMap;

/// How much one claim may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimLimits {
    /// Most notifications leased by this claim (the caller's free delivery slots).
    pub total: u32,
    /// Most notifications of one subscription in flight at once, counting those already
    /// leased by any process.
    pub per_subscription: u32,
    /// The same for a relay subscription: one with message `types` and a Viber channel.
    pub per_relay_subscription: u32,
    /// Most notifications of one client in flight at once, counting those already leased.
    pub per_client: u32,
}

impl ClaimLimits {
    /// Up to `total` due notifications, with no per-subscription or per-client cap (the
    /// oldest due first, taken round-robin over subscriptions).
    pub fn total(total: u32) -> Self {
        ClaimLimits {
            total,
            per_subscription: u32::MAX,
            per_relay_subscription: u32::MAX,
            per_client: u32::MAX,
        }
    }
}

/// One subscription with pending notifications, as a claim sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    /// The subscription id.
    pub subscription: String,
    /// Its client.
    pub client: String,
    /// Its due rows, counted up to the claim's `total` (no more is ever needed).
    pub due: u32,
    /// Its rows leased to some worker right now.
    pub in_flight: u32,
    /// Its earliest `next_attempt_at` among pending rows (due ones first in line).
    pub first_at: i64,
    /// A relay subscription (message `types`, Viber channel): capped by
    /// [`ClaimLimits::per_relay_subscription`].
    pub relay: bool,
}

/// One candidate per subscription with pending rows, leaving out disabled clients (their
/// deliveries wait until they are enabled). Parameters: `$1` now (ms), `$2` the most
/// due rows worth counting per subscription. The recursive part walks the distinct
/// subscription ids of pending rows in index order, one seek each; the three scalar
/// subqueries are range reads of the same index.
pub(crate) const CANDIDATES_SQL: &str = "\
    WITH RECURSIVE subs(id) AS ( \
        SELECT (SELECT subscription_id FROM notifications WHERE state = 'pending' \
                ORDER BY subscription_id LIMIT 1) \
        UNION ALL \
        SELECT (SELECT n.subscription_id FROM notifications n \
                WHERE n.state = 'pending' AND n.subscription_id > subs.id \
                ORDER BY n.subscription_id LIMIT 1) \
        FROM subs WHERE subs.id IS NOT NULL) \
    SELECT subs.id, s.client_id, \
        (SELECT count(*) FROM (SELECT 1 FROM notifications n \
                WHERE n.state = 'pending' AND n.subscription_id = subs.id \
                  AND n.next_attempt_at <= $1 LIMIT $2) d) AS due, \
        (SELECT count(*) FROM notifications n \
                WHERE n.state = 'pending' AND n.subscription_id = subs.id \
                  AND n.next_attempt_at > $1 AND n.lease_until > $1) AS in_flight, \
        (SELECT min(n.next_attempt_at) FROM notifications n \
                WHERE n.state = 'pending' AND n.subscription_id = subs.id) AS first_at, \
        CAST(CASE WHEN s.types IS NOT NULL AND s.channel_type = 'viber' THEN 1 ELSE 0 END AS BIGINT) AS relay \
    FROM subs JOIN subscriptions s ON s.id = subs.id \
    WHERE subs.id IS NOT NULL \
      AND NOT EXISTS (SELECT 1 FROM clients c \
                      WHERE c.id = s.client_id AND c.disabled_at IS NOT NULL)";

/// How many due rows to lease from each subscription: slots handed out one per subscription per
/// round, the subscription due longest first, while the subscription is under
/// `per_subscription` (`per_relay_subscription` for a relay subscription) and its client under
/// `per_client` (both counting rows in flight), until
/// `total` are given or nobody can take more.
pub(crate) fn plan(candidates: &[Candidate], limits: &ClaimLimits) -> Vec<(String, u32)> {
    let mut order: Vec<&Candidate> = candidates.iter().filter(|c| c.due > 0).collect();
    order.sort_by(|a, b| {
        a.first_at
            .cmp(&b.first_at)
            .then_with(|| a.subscription.cmp(&b.subscription))
    });
    let mut client_load: HashMap<&str, u32> = HashMap::new();
    for c in candidates {
        *client_load.entry(c.client.as_str()).or_default() += c.in_flight;
    }
    let mut taken = vec![0u32; order.len()];
    let mut left = limits.total;
    loop {
        let mut progressed = false;
        for (c, t) in order.iter().zip(taken.iter_mut()) {
            if left == 0 {
                break;
            }
            let load = client_load.entry(c.client.as_str()).or_default();
            let cap = if c.relay {
                limits.per_relay_subscription
            } else {
                limits.per_subscription
            };
            let fits =
                *t < c.due && c.in_flight.saturating_add(*t) < cap && *load < limits.per_client;
            if fits {
                *t += 1;
                *load += 1;
                left -= 1;
                progressed = true;
            }
        }
        if !progressed || left == 0 {
            break;
        }
    }
    order
        .into_iter()
        .zip(taken)
        .filter(|(_, t)| *t > 0)
        .map(|(c, t)| (c.subscription.clone(), t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(sub: &str, client: &str, due: u32, in_flight: u32, first_at: i64) -> Candidate {
        Candidate {
            subscription: sub.into(),
            client: client.into(),
            due,
            in_flight,
            first_at,
            relay: false,
        }
    }

    fn limits(total: u32, per_subscription: u32, per_client: u32) -> ClaimLimits {
        ClaimLimits {
            total,
            per_subscription,
            per_relay_subscription: per_subscription,
            per_client,
        }
    }

    #[test]
    fn a_backlog_takes_no_more_than_its_subscription_cap_and_the_others_get_the_rest() {
        let c = [
            cand("flood", "a", 1000, 0, 1),
            cand("polite", "b", 1, 0, 500),
        ];
        let p = plan(&c, &limits(64, 16, 64));
        assert_eq!(p, vec![("flood".into(), 16), ("polite".into(), 1)]);
    }

    #[test]
    fn a_relay_subscription_has_its_own_cap_and_its_client_keeps_to_its_share() {
        let relay = Candidate {
            relay: true,
            ..cand("bot", "payments", 1000, 10, 1)
        };
        let c = [
            relay,
            cand("hook", "payments", 1000, 0, 2),
            cand("other", "b", 5, 0, 3),
        ];
        let caps = ClaimLimits {
            total: 128,
            per_subscription: 16,
            per_relay_subscription: 128,
            per_client: 64,
        };
        // The client has 10 in flight and a share of 64: 54 more, of which its webhook takes
        // at most 16 and the bot the rest; the other client is served in full.
        let p = plan(&c, &caps);
        assert_eq!(
            p,
            vec![("bot".into(), 38), ("hook".into(), 16), ("other".into(), 5)]
        );
        // Under the ordinary cap the bot would get 6 (16 less its 10 in flight).
        let p = plan(&c, &limits(128, 16, 64));
        assert_eq!(p[0], ("bot".into(), 6));
    }

    #[test]
    fn rows_in_flight_count_against_the_caps() {
        let c = [cand("s1", "a", 10, 15, 1), cand("s2", "a", 10, 0, 2)];
        // s1 has one slot left; client a has 15 in flight of 20, so 5 more in all.
        let p = plan(&c, &limits(64, 16, 20));
        assert_eq!(p, vec![("s1".into(), 1), ("s2".into(), 4)]);
    }

    #[test]
    fn slots_go_round_robin_oldest_first_when_there_are_fewer_than_wanted() {
        let c = [
            cand("late", "b", 5, 0, 30),
            cand("early", "a", 5, 0, 10),
            cand("mid", "c", 5, 0, 20),
        ];
        let p = plan(&c, &limits(4, 16, 64));
        assert_eq!(
            p,
            vec![("early".into(), 2), ("mid".into(), 1), ("late".into(), 1)]
        );
    }

    #[test]
    fn without_caps_everything_due_is_taken_up_to_the_total() {
        let c = [cand("s1", "a", 3, 0, 1), cand("s2", "a", 2, 0, 2)];
        let p = plan(&c, &ClaimLimits::total(10));
        assert_eq!(p, vec![("s1".into(), 3), ("s2".into(), 2)]);
        let none_due = [cand("s1", "a", 0, 4, 99)];
        assert!(plan(&none_due, &ClaimLimits::total(10)).is_empty());
    }
}
