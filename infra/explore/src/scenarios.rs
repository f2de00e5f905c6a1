//! The scenarios the explorer runs: the pairs it explores exhaustively, the triples (and more)
//! it samples at random, and the named regression schedules that pin every race it found.

use crate::gate::Fault;
use crate::sched::Dir;
use crate::world::{GIVE_UP_MS, OpKind, Scenario, Setup, THRESHOLD_MS, When};

use OpKind::{
    Cancel, Confirm, Persist, PersistBatch, PersistMany, Raise, Reconcile, ReconcileAhead, ReconcileAt,
    ReconcileAtFault, ReconcileBehind, Sweep, Timeout, Try, TryFault, WarmUp,
};
use Setup::{DiesAt, LoseMessages, LoseStock, Op, OpAt, Redeliver, SkewStock, Trim};

const SEND: &str = "sqs send reservation";
const DEDUCT_SCRIPT: &str = "redis deduct.lua";
const RESEND: &str = "sqs resend reservations";
const SPLIT: &str = "redis split (adopt.lua, hdel)";

fn sc(name: &'static str, setup: &[Setup], ops: &[OpKind]) -> Scenario {
    Scenario {
        name,
        quantity: 5,
        per_user_limit: Some(4),
        buckets: 1,
        shards: 1,
        threshold_ms: THRESHOLD_MS,
        give_up_ms: GIVE_UP_MS,
        entries_per_run: flashstock::config::ENTRIES_PER_RUN,
        may_end_lost: Vec::new(),
        turns_held: false,
        orders: vec![(0, 1), (1, 1)],
        shared_order_id: false,
        must_accept: Vec::new(),
        setup: setup.to_vec(),
        ops: ops.to_vec(),
        when: When::AfterThreshold,
    }
}

/// One unit, held by order 1 (buyer 1): order 0 is refused until it comes back.
fn sold_out(name: &'static str, ops: &[OpKind]) -> Scenario {
    Scenario { quantity: 1, ..sc(name, &[Op(Try(1))], ops) }
}

/// Orders 0 and 1 (buyers 0 and 1) use the same order id.
fn shared_id(mut s: Scenario) -> Scenario {
    s.shared_order_id = true;
    s
}

/// Past reconciliation's give-up deadline: what has no durable record by then is given up.
fn after_give_up(mut s: Scenario) -> Scenario {
    s.when = When::AfterGiveUp;
    s
}

/// A day later, on a collection without a per-user limit: Redis then forgets durable orders too
/// (with a limit it keeps them, their units count toward the buyer's limit).
fn after_retention(mut s: Scenario) -> Scenario {
    s.when = When::AfterRetention;
    s.per_user_limit = None;
    s
}

/// Over two stock buckets with `quantity` units split [⌈q/2⌉, ⌊q/2⌋]: buyer 0 lives in bucket 0,
/// buyer 1 in bucket 1, so with one unit buyer 1's persist first moves it over (a move interleaved
/// with whatever the other operation does).
fn bucketed(quantity: u64, mut s: Scenario) -> Scenario {
    s.buckets = 2;
    s.quantity = quantity;
    s
}

/// [`bucketed`] over two cache shards too: buyer 0's records and shard 0 hold bucket 0's units,
/// buyer 1's and shard 1 bucket 1's, so with one unit buyer 1's Try finds its shard empty and a
/// unit moves from shard 0 first (a shard move interleaved with the other operation).
fn sharded(quantity: u64, s: Scenario) -> Scenario {
    let mut s = bucketed(quantity, s);
    s.shards = 2;
    s
}

/// Four units over four stock buckets and two cache shards, raised to four by one of the
/// operations (every other one's instance read the settings before): buyers 0 and 1 both move
/// (from shard 0 to 2 and from 1 to 3).
fn raised(s: Scenario) -> Scenario {
    Scenario { buckets: 4, shards: 2, quantity: 4, ..s }
}

/// The least threshold the timing rules allow: a cancel's invocation lives up to 30 s past the
/// clock it logs its intent on, and a run's clock may be 5 s ahead
/// (`Timing::conflicts`, threshold ≥ cancel timeout + `CLOCK_SKEW`).
const THRESHOLD_FLOOR_MS: i64 = 35_000;

/// A cancel of a RESERVED order ∥ a run whose clock is as far ahead of the cancel's start as a
/// cancel still alive can see (30 s + 5 s skew, less a second), at the threshold's floor.
fn live_cancel_at_the_threshold_floor() -> Scenario {
    Scenario {
        threshold_ms: THRESHOLD_FLOOR_MS,
        ..sc("cancel-reconcile-ahead", &[Op(Try(0)), Op(Persist)], &[Cancel(0), ReconcileAhead(34)])
    }
}

/// The least give-up the timing rules allow with the template's timing: the threshold, two runs'
/// worth of the schedule's interval and a run's timeout, a visibility timeout, then the quiet
/// stretch (45 + 2 × (60 + 55) + 180 + 906 s; `Timing::conflicts`).
const GIVE_UP_FLOOR_MS: i64 = 1_361_000;

/// An order's message lost; the first run to re-send it does so as late as a run can (a
/// threshold, then a whole interval and a run's length later: 160 s) and its send fails; the next
/// look comes a visibility timeout later (340 s) and the run that takes it is as late again
/// (454 s: the quiet stretch before the floor give-up begins at 455 s, less up to a second since
/// the Try's acceptance is kept in whole seconds); a consumer delivers what it sent; then a run
/// past the give-up. At least two runs re-send before the give-up: the order
/// ends RESERVED, never LOST.
fn second_resend_before_the_floor_give_up() -> Scenario {
    Scenario {
        give_up_ms: GIVE_UP_FLOOR_MS,
        ..sc(
            "failed-resend-second-resend-give-up",
            &[Op(Try(0)), LoseMessages],
            &[ReconcileAtFault(160, RESEND, Fault::FailBefore), ReconcileAt(454), Persist, ReconcileAt(1_362)],
        )
    }
}

/// Two lost messages, runs examining one entry at a time (the limit, at 1 instead of 20,000):
/// order 0, accepted at t₀, is already in the quiet stretch before its give-up (from 594 s) when
/// the first run comes (760 s); order 1, accepted at 700 s, is past its threshold. The first run
/// takes the longest-logged (order 0) and re-logs it to come due at its give-up; the next (1,290
/// s, order 1 still 4 s short of its own quiet stretch) takes order 1 and re-sends it; a consumer
/// delivers; a run past order 1's give-up (2,246 s) gives order 0 up. Order 0 may end LOST (no run
/// re-sent it in time), order 1 must end RESERVED.
fn quiet_order_ahead_of_a_due_one() -> Scenario {
    Scenario {
        entries_per_run: 1,
        may_end_lost: vec![0],
        ..sc(
            "quiet-order-ahead-of-a-due-one",
            &[Op(Try(0)), OpAt(700, Try(1)), LoseMessages],
            &[ReconcileAt(760), ReconcileAt(1_290), Persist, ReconcileAt(2_246)],
        )
    }
}

/// One persist invocation with two chunks for one stock bucket (120 orders) while the bucket's
/// write turn is held elsewhere throughout: it waits for the turn as long as its budget allows,
/// then writes without it, and must end inside its 30 s timeout.
fn two_chunks_with_the_turn_held() -> Scenario {
    let orders: Vec<(usize, u32)> = (0..120).map(|i| (i, 1)).collect();
    let setup: Vec<Setup> = (0..orders.len()).map(|i| Op(Try(i))).collect();
    Scenario {
        quantity: 120,
        turns_held: true,
        orders,
        ..sc("persist-two-chunks-turn-held", &setup, &[PersistMany(120)])
    }
}

/// Every pair the explorer runs exhaustively (every interleaving, and every death after any
/// step with its trigger's retry).
pub fn pairs() -> Vec<Scenario> {
    vec![
        sc("try-replay", &[], &[Try(0), Try(0)]),
        shared_id(sc("two-buyers-one-order-id", &[], &[Try(0), Try(1)])),
        shared_id(sc("foreign-cancel-try", &[], &[Cancel(1), Try(0)])),
        sc("failing-publish-try-replay", &[], &[TryFault(0, SEND, Fault::FailBefore), Try(0)]),
        sc("ambiguous-publish-try-replay", &[], &[TryFault(0, SEND, Fault::FailAfter), Try(0)]),
        sc("resent-script-try-replay", &[], &[TryFault(0, DEDUCT_SCRIPT, Fault::SentTwice), Try(0)]),
        sold_out("refused-try-replay", &[Try(0), Try(0)]),
        sold_out("refused-try-stock-returns", &[Try(0), Cancel(1)]),
        sc("try-cancel", &[], &[Try(0), Cancel(0)]),
        sc("cancel-cancel", &[Op(Try(0))], &[Cancel(0), Cancel(0)]),
        sc("persist-cancel", &[Op(Try(0))], &[Persist, Cancel(0)]),
        sc("persist-persist", &[Op(Try(0)), Redeliver(0)], &[Persist, Persist]),
        sc("persist-timeout", &[Op(Try(0)), Op(Persist), Redeliver(0)], &[Persist, Timeout(0)]),
        sc("cancel-confirm", &[Op(Try(0)), Op(Persist)], &[Cancel(0), Confirm(0)]),
        sc("cancel-timeout", &[Op(Try(0)), Op(Persist)], &[Cancel(0), Timeout(0)]),
        sc("confirm-timeout", &[Op(Try(0)), Op(Persist)], &[Confirm(0), Timeout(0)]),
        sc("sweep-cancel", &[Op(Try(0)), Op(Persist)], &[Sweep, Cancel(0)]),
        // The tally (in reconciliation) racing the confirm it counts, and another tally.
        sc("confirm-tally", &[Op(Try(0)), Op(Persist)], &[Confirm(0), Reconcile]),
        sc("tally-tally", &[Op(Try(0)), Op(Persist), Op(Confirm(0))], &[Reconcile, Reconcile]),
        sc("reconcile-late-persist", &[Op(Try(0))], &[Reconcile, Persist]),
        after_give_up(sc("give-up-late-persist", &[Op(Try(0))], &[Reconcile, Persist])),
        sc("reconcile-cancel-lost", &[Op(Try(0)), LoseMessages], &[Reconcile, Cancel(0)]),
        after_give_up(sc("give-up-cancel-lost", &[Op(Try(0)), LoseMessages], &[Reconcile, Cancel(0)])),
        sc("reconcile-cancel-unsettled", &[Op(Try(0)), DiesAt(Persist, "redis settle.lua")], &[Reconcile, Cancel(0)]),
        sc("warmup-try", &[LoseStock], &[WarmUp, Try(0)]),
        sc("warmup-persist", &[Op(Try(0)), LoseStock], &[WarmUp, Persist]),
        sc("warmup-cancel", &[Op(Try(0)), Op(Persist), LoseStock], &[WarmUp, Cancel(0)]),
        sc("failed-send-reconcile-replay", &[DiesAt(Try(0), SEND)], &[Reconcile, Try(0)]),
        after_give_up(sc("failed-send-give-up-replay", &[DiesAt(Try(0), SEND)], &[Reconcile, Try(0)])),
        sc("rebuild-try", &[LoseStock], &[Reconcile, Try(0)]),
        sc("rebuild-persist", &[Op(Try(0)), LoseStock], &[Reconcile, Persist]),
        sc("rebuild-cancel", &[Op(Try(0)), Op(Persist), LoseStock], &[Reconcile, Cancel(0)]),
        sc("drift-repair-try", &[SkewStock(1)], &[Reconcile, Try(0)]),
        sc("drift-repair-cancel", &[Op(Try(0)), Op(Persist), SkewStock(-1)], &[Reconcile, Cancel(0)]),
        after_retention(sc("trim-late-replay", &[Op(Try(0)), Op(Persist)], &[Reconcile, Try(0)])),
        after_retention(sc("trim-replay-cancel", &[Op(Try(0)), Op(Persist), Trim], &[Try(0), Cancel(0)])),
        after_retention(sc("trim-timeout", &[Op(Try(0)), Op(Persist)], &[Reconcile, Timeout(0)])),
        live_cancel_at_the_threshold_floor(),
        bucketed(1, sc("move-persist-cancel", &[Op(Try(1))], &[Persist, Cancel(1)])),
        bucketed(1, sc("move-persist-reconcile", &[Op(Try(1))], &[Reconcile, Persist])),
        bucketed(1, sc("move-persist-timeout", &[Op(Try(1)), Op(Persist), Redeliver(1)], &[Persist, Timeout(1)])),
        bucketed(1, sc("moved-cancel-confirm", &[Op(Try(1)), Op(Persist)], &[Cancel(1), Confirm(1)])),
        // Cache shards: buyer 1's Try, on an empty shard 1, and its replay: the unit in shard 0
        // must reach one of them. Then the two buyers racing for it, and moves against the rest.
        Scenario { must_accept: vec![1], ..sharded(1, sc("shard-move-try-replay", &[], &[Try(1), Try(1)])) },
        sharded(1, sc("shard-move-try-try", &[], &[Try(1), Try(0)])),
        sharded(1, sc("shard-move-try-reconcile", &[], &[Try(1), Reconcile])),
        sharded(1, sc("shard-move-persist-cancel", &[Op(Try(1))], &[Persist, Cancel(1)])),
        sharded(2, sc("shard-move-try-cancel", &[Op(Try(0)), Op(Persist)], &[Try(1), Cancel(0)])),
        sharded(1, sc("shard-move-try-rebuild", &[LoseStock], &[Try(1), Reconcile])),
        // A raise of the cache shards against a stale instance's Try, replay, cancel (pending
        // and durable), persist, reconciliation (which finishes raises) and another raise.
        raised(sc("raise-try", &[Op(Try(0))], &[Raise(4), Try(1)])),
        raised(sc("raise-try-replay", &[Op(Try(0))], &[Raise(4), Try(0)])),
        raised(sc("raise-cancel", &[Op(Try(0))], &[Raise(4), Cancel(0)])),
        raised(sc("raise-cancel-durable", &[Op(Try(0)), Op(Persist)], &[Raise(4), Cancel(0)])),
        raised(sc("raise-persist", &[Op(Try(0))], &[Raise(4), Persist])),
        raised(sc("raise-reconcile", &[Op(Try(0))], &[Raise(4), Reconcile])),
        raised(sc("raise-raise", &[Op(Try(0))], &[Raise(4), Raise(4)])),
        // The raiser died half-way (its buyers fenced, none moved): a replay meanwhile, and the
        // run that finishes the raise.
        raised(sc("raise-died-replay-reconcile", &[Op(Try(0)), DiesAt(Raise(4), SPLIT)], &[Try(0), Reconcile])),
        // Buyer 1 takes 2 of bucket 1's 1 (a move from bucket 0) while buyer 0 takes bucket 0's
        // last: the move and the other persist race for the donor.
        Scenario {
            orders: vec![(0, 1), (1, 2)],
            ..bucketed(3, sc("move-races-donor-persist", &[Op(Try(0)), Op(Try(1))], &[Persist, Persist]))
        },
    ]
}

/// The groups of three or more sampled at random.
pub fn triples() -> Vec<Scenario> {
    vec![
        sc("try-persist-cancel", &[], &[Try(0), Persist, Cancel(0)]),
        sc("persist-cancel-reconcile", &[Op(Try(0))], &[Persist, Cancel(0), Reconcile]),
        after_give_up(sc("persist-cancel-give-up", &[Op(Try(0))], &[Persist, Cancel(0), Reconcile])),
        // Two runs alive at once, on either side of the give-up deadline, and the client's replay.
        after_give_up(sc(
            "two-clocks-give-up-replay",
            &[DiesAt(Try(0), SEND)],
            &[Reconcile, ReconcileBehind(60), Try(0)],
        )),
        sc("confirm-cancel-timeout", &[Op(Try(0)), Op(Persist)], &[Confirm(0), Cancel(0), Timeout(0)]),
        sc(
            "two-buyers-confirm-cancel-tally",
            &[Op(Try(0)), Op(Try(1)), Op(Persist)],
            &[Confirm(0), Cancel(1), Reconcile],
        ),
        sold_out("refused-try-stock-returns-replay", &[Try(0), Cancel(1), Try(0)]),
        sc("ambiguous-publish-replay-persist", &[], &[TryFault(0, SEND, Fault::FailAfter), Try(0), Persist]),
        sc("two-buyers-batch-reconcile", &[], &[Try(0), Try(1), PersistBatch, Reconcile]),
        Scenario {
            quantity: 1,
            ..sc("two-buyers-one-unit-batch-cancel", &[], &[Try(0), Try(1), PersistBatch, Cancel(0)])
        },
        sc("try-persist-timeout-cancel", &[], &[Try(0), Persist, Timeout(0), Cancel(0)]),
        sc("refused-try-cancel-warmup-try", &[LoseStock], &[Try(0), Cancel(0), WarmUp, Try(0)]),
        bucketed(1, sc("move-persist-cancel-reconcile", &[Op(Try(1))], &[Persist, Cancel(1), Reconcile])),
        bucketed(2, sc("two-buckets-batch-timeouts", &[], &[Try(0), Try(1), PersistBatch, Timeout(0), Timeout(1)])),
        // A raise of the cache shards (2 to 4), at random points of its many steps, against a
        // stale instance's Try, cancel and persist; and against persist, reconciliation and a replay.
        raised(sc("raise-try-cancel-persist", &[Op(Try(0))], &[Raise(4), Try(1), Cancel(0), Persist])),
        raised(sc("raise-persist-reconcile-replay", &[Op(Try(0))], &[Raise(4), Persist, Reconcile, Try(0)])),
    ]
}

/// A named, deterministic schedule that broke an invariant on the code as it was.
pub struct Regression {
    pub name: &'static str,
    pub what: &'static str,
    pub scenario: Scenario,
    pub script: Vec<Dir>,
}

pub fn regressions() -> Vec<Regression> {
    use Dir::{Finish, Kill, Until};
    let all: Vec<Scenario> = pairs().into_iter().chain(triples()).collect();
    let pair = |name: &str| all.iter().find(|s| s.name == name).cloned().expect("a scenario of that name");
    vec![
        Regression {
            name: "raise-then-stale-persist-settles",
            what: "a raise of the cache shards from 2 to 4 ran to its end while an order's message waited; \
                   persist's instance, still routing by 2, had its settle refused on the buyer's old shard \
                   (LAYOUT), and every redelivery the same until its settings cache expired (10 s): the \
                   order's entry stayed pending on its new shard after every delivery and run. A refusal \
                   for now makes the instance read the settings again",
            scenario: pair("raise-reconcile"),
            script: vec![Finish(0), Finish(1)],
        },
        Regression {
            name: "empty-home-shard-refuses-while-units-elsewhere",
            what: "a collection over two cache shards, its one unit in shard 0: buyer 1, homed on shard 1, \
                   was answered SOLD_OUT by their empty shard while shard 0 still held the unit. A buyer's \
                   empty shard now takes units from another (a shard move) before a Try is refused",
            scenario: pair("shard-move-try-replay"),
            script: vec![Finish(0), Finish(1)],
        },
        Regression {
            name: "run-clears-a-live-cancels-intent",
            what: "a cancel logged its intent and was committing in DynamoDB when a run whose clock was 34 s \
                   ahead (the cancel still alive: 30 s timeout + 5 s skew) cleared intents older than the \
                   threshold; at the old floor of 31 s it cleared this one, and the cancel's release returned \
                   nothing: Redis a unit low, the buyer's held unit leaked. Holds at the 35 s floor",
            scenario: live_cancel_at_the_threshold_floor(),
            script: vec![Until(0, "dynamodb cancel-transaction"), Finish(1), Finish(0)],
        },
        Regression {
            name: "one-failed-resend-ends-lost",
            what: "the re-log look-ahead puts a re-sent order's next look a visibility timeout (180 s) \
                   after the run that re-sent it; at the old 20-minute give-up the quiet stretch began \
                   294 s after acceptance, so when the first re-send (as late as 160 s) failed, the next \
                   look (as late as 454 s) fell inside it: no second re-send, and the order ended LOST \
                   though stock existed. Holds at the give-up floor of 1,361 s",
            scenario: second_resend_before_the_floor_give_up(),
            script: vec![Finish(0), Finish(1), Finish(2), Finish(3)],
        },
        Regression {
            name: "quiet-orders-crowd-out-due-ones",
            what: "orders in the quiet stretch before their give-up stayed due every run, and the run's \
                   examination limit could be spent on them every time: an order still healed forward \
                   behind them was never examined, never re-sent, and its accepted order stayed pending \
                   (at scale: 20,000 quiet entries ahead of it). An order in the quiet stretch is now re-logged \
                   to come due at its give-up, and the limit takes the longest-logged first",
            scenario: quiet_order_ahead_of_a_due_one(),
            script: vec![Finish(0), Finish(1), Finish(2), Finish(3)],
        },
        Regression {
            name: "turn-waits-outlast-persists-timeout",
            what: "persist waited up to 15 s for its stock bucket's write turn before each chunk, against its \
                   30 s timeout: with the turn held elsewhere, a batch of two chunks for one bucket ran past \
                   its timeout on waiting alone, and was ended though it would have gone through. One \
                   turn-waiting budget per invocation (12 s, 2/5 of the timeout); past it, chunks write \
                   without their turn (I9; this schedule waits 12 s in real time)",
            scenario: two_chunks_with_the_turn_held(),
            script: vec![Finish(0)],
        },
        Regression {
            name: "healed-forward-order-gets-no-window",
            what: "reconciliation re-sent an order past its threshold and persist made it RESERVED then; \
                   its payment deadline counted from acceptance, so it was already near (later, past) and a \
                   timer or the sweep cancelled it TIMEOUT though the buyer never had a window to pay. \
                   The window counts from durability (I8)",
            scenario: pair("reconcile-late-persist"),
            script: vec![Finish(0), Finish(1)],
        },
        Regression {
            name: "cancel-in-persist-commit-settle-window",
            what: "persist commits, the buyer cancels the RESERVED order, then persist settles: the cancel's \
                   release found a settled entry with no intent and returned nothing",
            scenario: pair("persist-cancel"),
            script: vec![Until(0, "redis settle.lua"), Until(1, "redis release.lua"), Finish(0), Finish(1)],
        },
        Regression {
            name: "reconcile-settles-between-intent-and-release",
            what: "reconciliation settles a durable but unsettled entry between a cancel's intent and its \
                   release, clearing the intent: the release returned nothing",
            scenario: pair("reconcile-cancel-unsettled"),
            script: vec![Until(0, "redis settle.lua"), Until(1, "redis release.lua"), Finish(0), Finish(1)],
        },
        Regression {
            name: "replay-answered-then-publish-fails",
            what: "a replay answers 202 while the first Try's publish is failing; the first Try then undid \
                   the deduction and forgot the order: 404 for an accepted order",
            scenario: pair("failing-publish-try-replay"),
            script: vec![Until(0, SEND), Finish(1), Finish(0)],
        },
        Regression {
            name: "resent-try-script-never-published",
            what: "the client library re-sends deduct.lua after a dropped connection; the second answer is a \
                   replay, and the Try answered 202 without publishing: the order ended LOST",
            scenario: Scenario {
                ops: vec![TryFault(0, DEDUCT_SCRIPT, Fault::SentTwice)],
                ..pair("resent-script-try-replay")
            },
            script: vec![Finish(0)],
        },
        Regression {
            name: "late-replay-after-trim-deducts-twice",
            what: "after Redis forgot a settled order, a replayed Try took stock again and persist settled \
                   that second deduction as durable: Redis one unit low, the buyer's counter doubled",
            scenario: pair("trim-late-replay"),
            script: vec![Finish(0), Finish(1)],
        },
        Regression {
            name: "timeout-after-trim-skips-return",
            what: "a payment-window timeout after Redis forgot the settled order gave the unit back in \
                   DynamoDB only: Redis one unit low, the buyer's counter never lowered",
            scenario: pair("trim-timeout"),
            script: vec![Finish(0), Finish(1)],
        },
        Regression {
            name: "ambiguous-send-undone-yet-reserved",
            what: "the reservation message reached SQS but its answer was lost: the Try gave the stock back \
                   and answered \"nothing was taken\", and the message then made the order RESERVED",
            scenario: Scenario {
                ops: vec![TryFault(0, SEND, Fault::FailAfter)],
                ..pair("ambiguous-publish-try-replay")
            },
            script: vec![Finish(0)],
        },
        Regression {
            name: "slow-message-given-up-at-the-threshold",
            what: "reconciliation found an order with no durable record past the threshold while its message \
                   was still queued, tombstoned it and gave the stock back: the message then met the \
                   tombstone and an accepted order ended LOST although the stock was there",
            scenario: pair("reconcile-late-persist"),
            script: vec![Finish(0), Finish(1)],
        },
        Regression {
            name: "lost-message-given-up-though-stock-existed",
            what: "the order's message was lost; reconciliation cancelled it (LOST) instead of re-sending \
                   it, though DynamoDB had the stock for it",
            scenario: Scenario { ops: vec![Reconcile], ..pair("reconcile-cancel-lost") },
            script: vec![Finish(0)],
        },
        Regression {
            name: "runs-either-side-of-the-give-up",
            what: "a run whose clock was a minute behind re-sent (and re-logged) an order while a run \
                   past the give-up deadline was tombstoning it; the client's replay then looked fresh and \
                   answered 202 for an order that ended LOST (two fixes, each enough: no run heals forward \
                   in the band before the give-up, and a replay is judged stale by its acceptance, not by \
                   when it was last logged)",
            scenario: all.iter().find(|s| s.name == "two-clocks-give-up-replay").cloned().expect("the triple"),
            script: vec![Until(0, "dynamodb put-tombstone"), Finish(1), Finish(2), Finish(0)],
        },
        // Found by reviewing the fixes above, then pinned here before their own fixes.
        Regression {
            name: "intent-settles-a-second-deduction",
            what: "after Redis forgot a RESERVED order, a replay took a unit again and the buyer cancelled: \
                   the intent settled that second deduction as the durable one, the release returned it, \
                   and the durable unit's Redis share was never returned",
            scenario: pair("trim-replay-cancel"),
            script: vec![Finish(0), Finish(1)],
        },
        Regression {
            name: "replay-accepted-while-reconcile-tombstones",
            what: "reconciliation wrote the LOST tombstone of an old pending order, then the client's replay \
                   re-sent it and answered 202: an accepted order ended LOST",
            scenario: pair("failed-send-give-up-replay"),
            script: vec![Until(0, "redis release.lua"), Finish(1), Finish(0)],
        },
        Regression {
            name: "forget-claim-erases-a-cancel-tombstone",
            what: "a refused Try dropped its directory claim after the buyer's cancel had turned it into a \
                   tombstone: a Try started after the cancel answered was accepted (there is no directory \
                   since the layout v2; the interleaving now parks the refused Try before its script)",
            scenario: pair("refused-try-cancel-warmup-try"),
            script: vec![Until(0, "redis deduct.lua"), Finish(1), Finish(0), Finish(2), Finish(3)],
        },
        Regression {
            name: "stale-replay-refreshes-a-tombstoned-entry",
            what: "reconciliation wrote the LOST tombstone and died before releasing; a stale replay \
                   re-logged the entry, so the client's next retry looked fresh and answered 202 for an \
                   order already cancelled",
            scenario: pair("failed-send-give-up-replay"),
            script: vec![Until(0, "redis release.lua"), Kill(0), Finish(1)],
        },
        Regression {
            name: "warm-up-counts-an-intent-twice",
            what: "warm-up read the cache before a cancel's DynamoDB transaction and DynamoDB after it, set \
                   the stock with that unit in it, and the cancel's release added it again",
            scenario: pair("warmup-cancel"),
            script: vec![
                Until(1, "dynamodb cancel-transaction"),
                Until(0, "dynamodb get-collection"),
                Until(1, "redis release.lua"),
                Finish(0),
                Finish(1),
            ],
        },
        Regression {
            name: "warm-up-subtracts-a-committed-deduction",
            what: "warm-up counted a pending deduction, persist committed it before warm-up read DynamoDB, \
                   and warm-up subtracted it a second time",
            scenario: pair("warmup-persist"),
            script: vec![Until(0, "dynamodb get-collection"), Until(1, "redis settle.lua"), Finish(0), Finish(1)],
        },
        Regression {
            name: "lost-stock-waits-for-an-unsettled-deduction",
            what: "the stock key was lost while an order's message was still in flight: warm-up (and \
                   reconciliation) refused to rebuild until it settled, and every Try of the collection \
                   answered 503 meanwhile (up to the give-up, when the message was lost too)",
            scenario: pair("warmup-persist"),
            script: vec![Finish(0), Finish(1)],
        },
        Regression {
            name: "lost-stock-with-a-cancel-committed-not-released",
            what: "the stock key was lost while a cancel had committed in DynamoDB but not yet given its \
                   unit back in Redis: a rebuild from the saleable (which has the unit) must hold it back, \
                   or the release adds it a second time",
            scenario: pair("warmup-cancel"),
            script: vec![Until(1, "redis release.lua"), Finish(0), Finish(1)],
        },
    ]
}

/// Every scenario by name.
pub fn by_name(name: &str) -> Option<Scenario> {
    pairs().into_iter().chain(triples()).find(|s| s.name == name)
}
