-- Fair delivery (issue #18): a claim looks at the subscriptions that have pending rows, one
-- index seek each (a skip scan over this index), and takes from each only as many as its
-- share allows, instead of the oldest due rows of the whole table, which one subscription's
-- backlog could fill. Pending rows only, like notifications_due.
CREATE INDEX notifications_pending_subscription
    ON notifications (subscription_id, next_attempt_at) WHERE state = 'pending';
