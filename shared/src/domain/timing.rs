//! The durable path's timing knobs, checked against each other: reconciliation must never give an
//! order up while SQS may still deliver its message, and must not re-send one before a healthy
//! first delivery had its chance. Checked at start-up (config) and against `template.yaml`.

use std::time::Duration;

/// The least stretch before an order's give-up deadline in which reconciliation re-sends
/// nothing (see [`Timing::quiet_stretch`]): two runs alive at once (each decides on its own
/// start clock) can then never decide the same order both ways.
pub const QUIET_STRETCH_FLOOR: Duration = Duration::from_secs(120);

/// Clock skew allowed between the functions (a Try and a run deciding the same order).
pub const CLOCK_SKEW: Duration = Duration::from_secs(5);

/// The knobs, as deployed: reconciliation's, the reservation queue's and the functions'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Age (since last logged) at which reconciliation looks at an unsettled deduction and, with
    /// no durable record, re-sends its message.
    pub threshold: Duration,
    /// Age (since accepted) after which reconciliation stops re-sending and gives the order up
    /// (tombstone, stock back, CANCELLED/LOST).
    pub give_up: Duration,
    /// The reservation queue's visibility timeout: a received message not deleted comes back
    /// after it.
    pub visibility_timeout: Duration,
    /// Receives of one message before SQS moves it to the dead-letter queue.
    pub max_receive_count: u32,
    /// The persist function's timeout.
    pub persist_timeout: Duration,
    /// The persist event source's batching window.
    pub batch_window: Duration,
    /// How often reconciliation runs (its schedule).
    pub reconcile_interval: Duration,
    /// The reconcile function's timeout.
    pub reconcile_timeout: Duration,
    /// A run starts no collection after this long.
    pub reconcile_budget: Duration,
    /// The cancel function's timeout: a buyer's cancel, a batch of timers or an expiry sweep
    /// logs its cancel intents on its invocation's start clock and lives at most this long.
    pub cancel_timeout: Duration,
}

/// Which knob is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    Threshold,
    GiveUp,
    VisibilityTimeout,
    MaxReceiveCount,
    ReconcileBudget,
    ReconcileTimeout,
}

/// One rule a combination breaks, with the figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub knob: Knob,
    pub why: String,
}

impl Timing {
    /// The latest a message sent at acceptance can still be delivered and processed: it waits
    /// out the batching window, and each of its receives but the last hides it for a visibility
    /// timeout, the last one for at most the function's timeout (≤ the visibility timeout).
    /// Past this it is durable, or in the dead-letter queue.
    pub fn last_delivery(&self) -> Duration {
        self.batch_window + self.visibility_timeout * self.max_receive_count
    }

    /// The stretch before an order's give-up deadline in which reconciliation re-sends nothing
    /// and a replay is not promised: at least [`QUIET_STRETCH_FLOOR`], and long enough that every
    /// redelivery of the last message sent before it ends before the deadline.
    pub fn quiet_stretch(&self) -> Duration {
        QUIET_STRETCH_FLOOR.max(self.last_delivery() + CLOCK_SKEW)
    }

    /// How long one persist invocation waits for write turns in all: two fifths of its timeout
    /// (12 s of 30 s), so that a batch whose every chunk waits still has most of its time to
    /// transact. Once spent, chunks transact without their turn (conflicts retried). A wait per
    /// chunk instead (15 s each) could use a whole invocation up on waiting.
    pub fn persist_turn_budget(&self) -> Duration {
        self.persist_timeout * 2 / 5
    }

    /// The latest a lost order's second re-send goes out, after its acceptance: the first run
    /// past the threshold (up to an interval later) reaches it up to a run's length into its
    /// work and re-logs it ahead so that its next look comes a visibility timeout later; the
    /// run after that may again start an interval later and take a run's length to reach it.
    pub fn second_resend_by(&self) -> Duration {
        self.threshold + (self.reconcile_interval + self.reconcile_timeout) * 2 + self.visibility_timeout
    }

    /// Every rule the combination breaks (empty: consistent).
    pub fn conflicts(&self) -> Vec<Conflict> {
        let s = |d: Duration| d.as_secs_f64();
        let mut out = Vec::new();
        let mut bad = |knob, why: String| out.push(Conflict { knob, why });
        if self.max_receive_count == 0 {
            bad(Knob::MaxReceiveCount, "must be at least 1".into());
        }
        if self.visibility_timeout < self.persist_timeout + self.batch_window {
            bad(
                Knob::VisibilityTimeout,
                format!(
                    "{} s is shorter than persist's timeout + batching window ({} s): SQS would deliver a \
                     batch again while its first invocation still runs",
                    s(self.visibility_timeout),
                    s(self.persist_timeout + self.batch_window)
                ),
            );
        }
        if self.threshold < self.persist_timeout + self.batch_window {
            bad(
                Knob::Threshold,
                format!(
                    "{} s is shorter than persist's timeout + batching window ({} s): reconciliation would \
                     re-send orders whose first delivery is still running",
                    s(self.threshold),
                    s(self.persist_timeout + self.batch_window)
                ),
            );
        }
        if self.threshold < self.cancel_timeout + CLOCK_SKEW {
            bad(
                Knob::Threshold,
                format!(
                    "{} s is shorter than the cancel function's timeout + clock skew ({} s): reconciliation could \
                     clear the intent of a cancel still running, and its release would then return nothing \
                     (Redis low, the buyer's held units leaked)",
                    s(self.threshold),
                    s(self.cancel_timeout + CLOCK_SKEW)
                ),
            );
        }
        let quiet = self.quiet_stretch();
        if self.give_up < self.second_resend_by() + quiet {
            bad(
                Knob::GiveUp,
                format!(
                    "{} s is shorter than the latest second re-send of a lost message ({} s: the {} s threshold, \
                     two runs {} s apart each up to {} s long, and the {} s visibility timeout before the second \
                     look) + the {} s before the give-up in which nothing is re-sent, so that the last \
                     message's redeliveries (batching window + {} receives × {} s visibility = {} s) end before \
                     it: one failed send could end an order LOST, or reconciliation cancel an order SQS is still \
                     delivering",
                    s(self.give_up),
                    s(self.second_resend_by()),
                    s(self.threshold),
                    s(self.reconcile_interval),
                    s(self.reconcile_timeout),
                    s(self.visibility_timeout),
                    s(quiet),
                    self.max_receive_count,
                    s(self.visibility_timeout),
                    s(self.last_delivery())
                ),
            );
        }
        if self.reconcile_timeout + CLOCK_SKEW >= QUIET_STRETCH_FLOOR {
            bad(
                Knob::ReconcileTimeout,
                format!(
                    "{} s (+ {} s clock skew) is not inside the {} s band before the give-up: a run re-sending an \
                     order could still be alive when another gives it up",
                    s(self.reconcile_timeout),
                    s(CLOCK_SKEW),
                    s(QUIET_STRETCH_FLOOR)
                ),
            );
        }
        if self.reconcile_budget >= self.reconcile_timeout {
            bad(
                Knob::ReconcileBudget,
                format!(
                    "{} s is not inside the reconcile function's {} s timeout",
                    s(self.reconcile_budget),
                    s(self.reconcile_timeout)
                ),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// The template's values.
    fn deployed() -> Timing {
        Timing {
            threshold: S(45),
            give_up: S(1_500),
            visibility_timeout: S(180),
            max_receive_count: 5,
            persist_timeout: S(30),
            batch_window: S(1),
            reconcile_interval: S(60),
            reconcile_timeout: S(55),
            reconcile_budget: S(40),
            cancel_timeout: S(30),
        }
    }

    fn knobs(t: Timing) -> Vec<Knob> {
        t.conflicts().into_iter().map(|c| c.knob).collect()
    }

    #[test]
    fn the_deployed_combination_is_consistent() {
        assert_eq!(deployed().conflicts(), vec![]);
        assert_eq!(deployed().last_delivery(), S(901));
    }

    #[test]
    fn a_give_up_inside_the_redelivery_span_is_refused() {
        // A longer visibility timeout: the fifth receive can come after reconciliation gave up.
        let t = Timing { visibility_timeout: S(300), ..deployed() };
        assert_eq!(knobs(t), vec![Knob::GiveUp]);
        assert!(t.conflicts()[0].why.contains("1501 s"), "{:?}", t.conflicts());
        assert_eq!(knobs(Timing { max_receive_count: 7, ..deployed() }), vec![Knob::GiveUp]);
        // The second re-send by 45 + 2 × (60 + 55) + 180 = 455 s, then (901 s + 5 s skew) quiet.
        assert_eq!(deployed().quiet_stretch(), S(906));
        assert_eq!(deployed().second_resend_by(), S(455));
        assert_eq!(knobs(Timing { give_up: S(1_361), ..deployed() }), vec![]);
        assert_eq!(knobs(Timing { give_up: S(1_360), ..deployed() }), vec![Knob::GiveUp]);
        // The 20 minutes of before: a lost order's one failed re-send could end it LOST.
        assert_eq!(knobs(Timing { give_up: S(1_200), ..deployed() }), vec![Knob::GiveUp]);
    }

    #[test]
    fn persist_waits_for_turns_two_fifths_of_its_timeout() {
        assert_eq!(deployed().persist_turn_budget(), S(12));
        assert_eq!(Timing { persist_timeout: S(5), ..deployed() }.persist_turn_budget(), S(2));
    }

    #[test]
    fn a_threshold_a_live_cancel_outlasts_is_refused() {
        // A cancel logs its intent on its start clock and runs up to 30 s (+ 5 s skew).
        assert_eq!(knobs(Timing { threshold: S(35), ..deployed() }), vec![]);
        let t = Timing { threshold: S(34), ..deployed() };
        assert_eq!(knobs(t), vec![Knob::Threshold]);
        assert!(t.conflicts()[0].why.contains("35 s"), "{:?}", t.conflicts());
        assert_eq!(knobs(Timing { cancel_timeout: S(41), ..deployed() }), vec![Knob::Threshold]);
    }

    #[test]
    fn each_other_rule_names_its_knob() {
        assert_eq!(
            knobs(Timing { visibility_timeout: S(30), give_up: S(1_500), ..deployed() }),
            vec![Knob::VisibilityTimeout]
        );
        assert_eq!(knobs(Timing { threshold: S(20), ..deployed() }), vec![Knob::Threshold, Knob::Threshold]);
        assert_eq!(knobs(Timing { max_receive_count: 0, ..deployed() }), vec![Knob::MaxReceiveCount]);
        assert_eq!(knobs(Timing { reconcile_budget: S(55), ..deployed() }), vec![Knob::ReconcileBudget]);
        // Few runs between threshold and give-up (a slow schedule).
        let t = Timing { reconcile_interval: S(600), ..deployed() };
        assert_eq!(knobs(t), vec![Knob::GiveUp]);
        // A run that may outlive the band before the give-up.
        let t = Timing { reconcile_timeout: S(120), ..deployed() };
        assert_eq!(knobs(t), vec![Knob::ReconcileTimeout]);
    }
}
