//! The scheduler's side of every port call: an operation reaching a port call parks at its gate
//! until the controller lets exactly that operation take that one step. Between two steps only
//! the released operation runs, so a schedule is the sequence of (operation, port call) choices.
//!
//! A gate can also carry a fault for one labelled call: the request fails before it reaches the
//! service, it takes effect but the answer is lost, or it is sent twice (a client library's
//! retry after a dropped connection).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

/// A fault injected into one port call of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request never reaches the service; the caller sees an error.
    FailBefore,
    /// The request takes effect, then the answer is lost; the caller sees an error.
    FailAfter,
    /// The request is sent twice (the second answer is the one the caller sees).
    SentTwice,
}

/// What an operation tells the controller.
#[derive(Debug)]
pub enum Event {
    /// Parked before a port call; `go` lets it run (dropping `go` kills the operation here).
    Arrived { op: usize, label: &'static str, go: oneshot::Sender<()> },
    /// The released port call returned.
    StepDone { op: usize },
    /// The operation returned its answer.
    Done { op: usize },
}

/// One operation's gate. Cloned into each of its port wrappers.
#[derive(Clone)]
pub struct Gate {
    op: usize,
    tx: mpsc::UnboundedSender<Event>,
    /// Label → fault, used once each.
    faults: Arc<Mutex<HashMap<&'static str, Fault>>>,
    /// Off until the operation starts (its instance warms up ungated).
    armed: Arc<AtomicBool>,
    /// The schedule's step counter, and the step at which this operation first ran.
    clock: Arc<AtomicU64>,
    first: Arc<AtomicU64>,
}

impl Gate {
    pub fn new(
        op: usize,
        tx: mpsc::UnboundedSender<Event>,
        faults: &[(&'static str, Fault)],
        clock: Arc<AtomicU64>,
    ) -> Self {
        Self {
            op,
            tx,
            faults: Arc::new(Mutex::new(faults.iter().copied().collect())),
            armed: Arc::new(AtomicBool::new(false)),
            clock,
            first: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    /// From now on every call is a step.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// The schedule clock's value when this operation's first step ran (`u64::MAX`: none yet).
    pub fn first_step(&self) -> u64 {
        self.first.load(Ordering::SeqCst)
    }

    /// Parks until the controller releases this step; never returns if the operation is killed
    /// here (the controller then aborts its task). Returns the fault planned for this call, if any.
    pub async fn enter(&self, label: &'static str) -> Option<Fault> {
        if !self.armed.load(Ordering::SeqCst) {
            return None;
        }
        let (go, released) = oneshot::channel();
        if self.tx.send(Event::Arrived { op: self.op, label, go }).is_err() || released.await.is_err() {
            std::future::pending::<()>().await;
        }
        let now = self.clock.fetch_add(1, Ordering::SeqCst);
        let _ = self.first.compare_exchange(u64::MAX, now, Ordering::SeqCst, Ordering::SeqCst);
        self.faults.lock().ok().and_then(|mut f| f.remove(label))
    }

    pub fn leave(&self) {
        if self.armed.load(Ordering::SeqCst) {
            let _ = self.tx.send(Event::StepDone { op: self.op });
        }
    }

    pub fn done(&self) {
        let _ = self.tx.send(Event::Done { op: self.op });
    }
}
