//! The explorer in the test command: every named regression schedule (each broke an invariant on
//! the code before its fix) and a seeded sample of random schedules over every scenario. The full
//! exploration (every pair exhaustively, thousands of random schedules) is `infra/explore.sh`.

use std::sync::Arc;

use flashstock_explore::sched::Script;
use flashstock_explore::world::World;
use flashstock_explore::{random, scenarios};

async fn world() -> Arc<World> {
    let name = format!("xt{}", ulid::Ulid::new().to_string().to_lowercase());
    Arc::new(World::new(&name).await.expect("the local stack is up (run through infra/test.sh)"))
}

async fn regression(name: &str) {
    let r = scenarios::regressions().into_iter().find(|r| r.name == name).expect("a regression of that name");
    let w = world().await;
    let run = w.run(&r.scenario, &mut Script::new(&r.script)).await.expect("schedule runs");
    assert!(
        run.violations.is_empty(),
        "{name} ({}):\n  steps: {}\n  {:#?}",
        r.what,
        run.drive.trace.join(" → "),
        run.violations
    );
}

macro_rules! regressions {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                regression($name).await;
            }
        )*

        #[test]
        fn every_regression_schedule_has_a_test() {
            let mut named = vec![$($name),*];
            named.sort();
            let mut all: Vec<&str> = scenarios::regressions().iter().map(|r| r.name).collect();
            all.sort();
            assert_eq!(named, all);
        }
    };
}

regressions! {
    cancel_in_persist_commit_settle_window => "cancel-in-persist-commit-settle-window",
    reconcile_settles_between_intent_and_release => "reconcile-settles-between-intent-and-release",
    replay_answered_then_publish_fails => "replay-answered-then-publish-fails",
    resent_try_script_never_published => "resent-try-script-never-published",
    late_replay_after_trim_deducts_twice => "late-replay-after-trim-deducts-twice",
    timeout_after_trim_skips_return => "timeout-after-trim-skips-return",
    ambiguous_send_undone_yet_reserved => "ambiguous-send-undone-yet-reserved",
    intent_settles_a_second_deduction => "intent-settles-a-second-deduction",
    replay_accepted_while_reconcile_tombstones => "replay-accepted-while-reconcile-tombstones",
    stale_replay_refreshes_a_tombstoned_entry => "stale-replay-refreshes-a-tombstoned-entry",
    slow_message_given_up_at_the_threshold => "slow-message-given-up-at-the-threshold",
    lost_stock_waits_for_an_unsettled_deduction => "lost-stock-waits-for-an-unsettled-deduction",
    lost_stock_with_a_cancel_committed_not_released => "lost-stock-with-a-cancel-committed-not-released",
    lost_message_given_up_though_stock_existed => "lost-message-given-up-though-stock-existed",
    runs_either_side_of_the_give_up => "runs-either-side-of-the-give-up",
    forget_claim_erases_a_cancel_tombstone => "forget-claim-erases-a-cancel-tombstone",
    warm_up_counts_an_intent_twice => "warm-up-counts-an-intent-twice",
    warm_up_subtracts_a_committed_deduction => "warm-up-subtracts-a-committed-deduction",
    run_clears_a_live_cancels_intent => "run-clears-a-live-cancels-intent",
    healed_forward_order_gets_no_window => "healed-forward-order-gets-no-window",
    one_failed_resend_ends_lost => "one-failed-resend-ends-lost",
    quiet_orders_crowd_out_due_ones => "quiet-orders-crowd-out-due-ones",
    turn_waits_outlast_persists_timeout => "turn-waits-outlast-persists-timeout",
    empty_home_shard_refuses_while_units_elsewhere => "empty-home-shard-refuses-while-units-elsewhere",
    raise_then_stale_persist_settles => "raise-then-stale-persist-settles",
}

/// `per` seeded PCT schedules of each scenario, from a fixed seed: reproducible in CI.
async fn sample(scenarios: Vec<flashstock_explore::world::Scenario>, per: u64, seed: u64) {
    let w = world().await;
    let mut failures = Vec::new();
    let mut runs = 0;
    for sc in &scenarios {
        for i in 0..per {
            let (_, failure) = random(&w, sc, seed + i).await.expect("schedule runs");
            runs += 1;
            failures.extend(failure.map(|f| f.to_string()));
        }
    }
    assert!(runs > 0);
    assert!(failures.is_empty(), "{} of {runs} schedules broke an invariant:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn a_seeded_sample_of_the_pairs_holds_every_invariant() {
    sample(scenarios::pairs(), 3, 1_000).await;
}

#[tokio::test]
async fn a_seeded_sample_of_the_groups_holds_every_invariant() {
    sample(scenarios::triples(), 8, 2_000).await;
}
