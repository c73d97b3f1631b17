//! Who gets in: CPU-heavy image work is admitted to a pool sized to the cores, behind a short
//! bounded queue and a budget of decoded pixels in flight, of which no client may hold more
//! than its share; SSE streams are capped per client.
//! What cannot be admitted is refused at once (503 `overloaded`, 429 `too_many_streams`), so
//! the requests already admitted keep their latency and nobody waits out the request timeout.

use crate::error::{ApiError, ErrorCode};
use rubra_store::{ClientId, Principal};
use rubra_telemetry::metrics;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What a refused client is told to wait before trying again, in seconds.
const RETRY_AFTER_SECS: u64 = 1;

/// How long a caller counts as active after it last asked for a slot. While another caller
/// has been active this recently, no caller runs on every slot: one stays free for the others.
const ACTIVE_FOR: Duration = Duration::from_secs(1);

/// Counts a refused request under `rubra_rejected_requests_total{reason}`.
pub fn count_rejection(reason: &'static str) {
    metrics::counter!("rubra_rejected_requests_total", "reason" => reason).increment(1);
}

/// The gate in front of decoding and compositing: `slots` run at once, at most `max_waiting`
/// wait for a slot, and the pixels of admitted and waiting requests together stay within
/// `pixel_budget`. Cheap to clone.
///
/// No client may take the whole gate: each caller (an API key's client; every admin key is
/// one caller, also when it acts for a client with `?client=`) holds at most
/// `max(1, (slots + max_waiting) × share / 100)` places (running and waiting together) and at
/// most `pixel_budget × share / 100` pixels, except that a caller holding no pixels may always
/// bring one image that fits in what is free. With a share of at most 50 %, at least two
/// places and a budget of at least twice the largest image, a second caller's first request
/// therefore always finds a place and room for its pixels, however the first one floods.
///
/// Slots are handed to waiting requests fairly between callers: each caller waits in its own
/// line, and a freed slot goes to the next caller in turn (round robin), not to whoever asked
/// first. A caller with one image waiting therefore gets the next or nearly the next slot,
/// however many the flooding caller has queued.
///
/// And a caller never runs on every slot while another caller has asked for one within
/// [`ACTIVE_FOR`] (one second): the last free slot is kept for the others, so their image
/// starts at once instead of waiting out a whole decode of the flood's. A caller alone uses
/// every slot; slots kept free are handed on once the others have been quiet that long.
#[derive(Debug, Clone)]
pub struct Admission {
    inner: Arc<Gate>,
}

#[derive(Debug)]
struct Gate {
    slots: Mutex<Slots>,
    waiting: AtomicUsize,
    max_waiting: usize,
    pixel_budget: u64,
    places_per_client: usize,
    pixels_per_client: u64,
    held: Mutex<Held>,
}

/// The worker slots: how many are free, who runs on them and who waits for one, by caller.
#[derive(Debug)]
struct Slots {
    total: usize,
    free: usize,
    /// Each caller's use of the slots (callers that ran nothing lately are absent).
    usage: HashMap<Option<ClientId>, Usage>,
    /// Each caller's waiting requests, oldest first.
    lines: HashMap<Option<ClientId>, VecDeque<Waiter>>,
    /// Callers with a waiting request, in the order they are served next.
    turn: VecDeque<Option<ClientId>>,
    /// When each caller last asked for a slot, for [`ACTIVE_FOR`].
    seen: HashMap<Option<ClientId>, Instant>,
    /// A timer will hand out slots kept free for callers that have since gone quiet.
    recheck_pending: bool,
}

impl Slots {
    fn new(total: usize) -> Slots {
        Slots {
            total,
            free: total,
            usage: HashMap::new(),
            lines: HashMap::new(),
            turn: VecDeque::new(),
            seen: HashMap::new(),
            recheck_pending: false,
        }
    }

    /// Whether `caller` may take one more slot now. Always on a one-slot gate, while it
    /// leaves a slot to the others, or when no other caller has asked for one within
    /// [`ACTIVE_FOR`]; the last slot otherwise only when some other active caller has used the
    /// slots at least as much lately (so the heaviest user leaves it to the lighter ones, and
    /// a light client is never made to queue behind its own image).
    fn may_run(&self, caller: &Option<ClientId>, now: Instant) -> bool {
        let mine = self.usage.get(caller).map_or(0, |u| u.started.len());
        if self.total <= 1 || mine + 1 < self.total {
            return true;
        }
        let score = self.usage.get(caller).map_or(0.0, |u| u.score(now));
        let mut others = self
            .seen
            .iter()
            .filter(|(who, at)| *who != caller && now.duration_since(**at) < ACTIVE_FOR)
            .peekable();
        others.peek().is_none()
            || others.any(|(who, _)| self.usage.get(who).map_or(0.0, |u| u.score(now)) >= score)
    }

    /// When every caller but `caller` will have been quiet for [`ACTIVE_FOR`]; `None` when
    /// no other caller has asked for a slot.
    fn others_quiet_at(&self, caller: &Option<ClientId>) -> Option<Instant> {
        self.seen
            .iter()
            .filter(|(who, _)| *who != caller)
            .map(|(_, at)| *at + ACTIVE_FOR)
            .max()
    }

    /// The next waiter in turn whose caller may run, with that caller, taken out of its
    /// line; callers passed over keep their place in the turn, waiters that gave up are
    /// dropped on the way.
    fn next_waiter(&mut self, now: Instant) -> Option<(Waiter, Option<ClientId>)> {
        for _ in 0..self.turn.len() {
            let caller = self.turn.pop_front()?;
            if !self.lines.contains_key(&caller) {
                continue;
            }
            if !self.may_run(&caller, now) {
                self.turn.push_back(caller);
                continue;
            }
            let Some(line) = self.lines.get_mut(&caller) else {
                continue;
            };
            while line.front().is_some_and(Waiter::gave_up) {
                line.pop_front();
            }
            let Some(waiter) = line.pop_front() else {
                self.lines.remove(&caller);
                continue;
            };
            if line.is_empty() {
                self.lines.remove(&caller);
            } else {
                self.turn.push_back(caller.clone());
            }
            return Some((waiter, caller));
        }
        None
    }

    fn take(&mut self, caller: &Option<ClientId>, now: Instant) {
        self.free -= 1;
        self.usage
            .entry(caller.clone())
            .or_default()
            .started
            .push(now);
    }

    fn give_back(&mut self, caller: &Option<ClientId>, started: Instant) {
        self.free += 1;
        if let Some(usage) = self.usage.get_mut(caller) {
            usage.finish(started, Instant::now());
        }
    }
}

/// One caller's use of the slots: when its running slots started, and the slot time of
/// its finished runs, decaying with a time constant of [`ACTIVE_FOR`].
#[derive(Debug, Default)]
struct Usage {
    started: Vec<Instant>,
    busy_secs: f64,
    busy_at: Option<Instant>,
}

impl Usage {
    /// Finished slot time, decayed to `now`.
    fn decayed(&self, now: Instant) -> f64 {
        self.busy_at.map_or(0.0, |at| {
            let age = now.saturating_duration_since(at).as_secs_f64();
            self.busy_secs * (-age / ACTIVE_FOR.as_secs_f64()).exp()
        })
    }

    /// How much the caller has used the slots lately: its decayed finished slot time plus
    /// the time its running slots have run so far, in seconds.
    fn score(&self, now: Instant) -> f64 {
        let running: f64 = self
            .started
            .iter()
            .map(|s| now.saturating_duration_since(*s).as_secs_f64())
            .sum();
        self.decayed(now) + running
    }

    /// The run that started at `started` ended at `now`.
    fn finish(&mut self, started: Instant, now: Instant) {
        if let Some(i) = self.started.iter().position(|s| *s == started) {
            self.started.swap_remove(i);
        }
        self.busy_secs = self.decayed(now) + now.saturating_duration_since(started).as_secs_f64();
        self.busy_at = Some(now);
    }

    /// Nothing running and nothing left worth counting.
    fn is_spent(&self, now: Instant) -> bool {
        self.started.is_empty() && self.decayed(now) < 1e-3
    }
}

/// A running slot; dropping it hands the slot to the next waiting caller in turn.
#[derive(Debug)]
struct Slot {
    /// `None` once given back by other means (see [`Gate::dispatch`]).
    gate: Option<Arc<Gate>>,
    caller: Option<ClientId>,
    started: Instant,
}

impl Slot {
    /// Gives the slot back without handing it on (the caller does that).
    fn disarm(mut self) {
        if let Some(gate) = self.gate.take() {
            gate.lock_slots().give_back(&self.caller, self.started);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.lock_slots().give_back(&self.caller, self.started);
            Gate::dispatch(&gate);
        }
    }
}

/// A request waiting in its caller's line for a slot.
enum Waiter {
    /// An [`Admission::admit`] call, sent the slot; it runs its work itself.
    Wake(oneshot::Sender<Slot>),
    /// An [`Admission::run`] call's work, run by the thread that hands it the slot or by a
    /// new blocking task (see [`Gate::work`]).
    Job(Job),
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waiter::Wake(_) => "Wake",
            Waiter::Job(_) => "Job",
        })
    }
}

impl Waiter {
    /// The request stopped waiting (went away or was refused a queue place).
    fn gave_up(&self) -> bool {
        match self {
            Waiter::Wake(tx) => tx.is_closed(),
            Waiter::Job(job) => job.ticket.gave_up(),
        }
    }
}

/// The work of one [`Admission::run`] call and its ticket.
struct Job {
    ticket: Arc<Ticket>,
    /// The work; it gets the request's charge to drop as soon as the pixels are freed, and
    /// sends its outcome to the waiting call.
    work: Box<dyn FnOnce(Charge) + Send>,
}

impl Job {
    /// Runs the work on this thread unless its request gave up meanwhile.
    fn run(self) {
        if let Some(charge) = self.ticket.start() {
            (self.work)(charge);
        }
    }
}

/// What an [`Admission::run`] call holds while its work waits, shared by the call and the
/// job: the job takes it when it starts, the call gives it back if it stops waiting first
/// (so an abandoned request frees its place and pixels at once, and its work never runs).
#[derive(Debug)]
struct Ticket(Mutex<TicketState>);

#[derive(Debug)]
enum TicketState {
    Waiting {
        charge: Charge,
        place: Option<QueuePlace>,
        /// A slot was handed to the job, which is about to start: it needs no queue place.
        granted: bool,
    },
    Started,
    GaveUp,
}

impl Ticket {
    fn lock(&self) -> std::sync::MutexGuard<'_, TicketState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The job starts: its queue place is given back, its charge handed over; `None` when the
    /// request gave up.
    fn start(&self) -> Option<Charge> {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, TicketState::Started) {
            TicketState::Waiting { charge, place, .. } => {
                drop(place);
                Some(charge)
            }
            other => {
                *state = other;
                None
            }
        }
    }

    /// The request stops waiting: what it holds is given back unless its job started.
    fn give_up(&self) {
        let mut state = self.lock();
        if matches!(*state, TicketState::Waiting { .. }) {
            *state = TicketState::GaveUp;
        }
    }

    fn gave_up(&self) -> bool {
        matches!(*self.lock(), TicketState::GaveUp)
    }

    /// A slot was handed to the job.
    fn grant(&self) {
        if let TicketState::Waiting { granted, .. } = &mut *self.lock() {
            *granted = true;
        }
    }
}

/// Gives the ticket up when the waiting [`Admission::run`] call ends or is dropped.
struct GiveUpOnDrop(Arc<Ticket>);

impl Drop for GiveUpOnDrop {
    fn drop(&mut self) {
        self.0.give_up();
    }
}

/// What the admitted and waiting requests hold, in all and per caller.
#[derive(Debug, Default)]
struct Held {
    pixels: u64,
    by_caller: HashMap<Option<ClientId>, Share>,
}

/// One caller's part of the gate: its places (running and waiting) and pixels.
#[derive(Debug, Default, Clone, Copy)]
struct Share {
    places: usize,
    pixels: u64,
}

/// The right to run one piece of CPU work; dropping it frees the slot and the pixels. Move it
/// into the blocking task so they are held exactly as long as the work runs, even when the
/// request is abandoned meanwhile.
#[derive(Debug)]
pub struct Admitted {
    _slot: Slot,
    _charge: Charge,
}

/// A caller's place and pixels, counted against the gate until dropped.
#[derive(Debug)]
struct Charge {
    gate: Arc<Gate>,
    caller: Option<ClientId>,
    pixels: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        let now = {
            let mut held = self.gate.lock();
            held.pixels -= self.pixels;
            if let Some(share) = held.by_caller.get_mut(&self.caller) {
                share.places -= 1;
                share.pixels -= self.pixels;
                if share.places == 0 {
                    held.by_caller.remove(&self.caller);
                }
            }
            held.pixels
        };
        metrics::gauge!("rubra_decode_pixels_in_flight").set(now as f64);
    }
}

/// One place in the wait queue, given back when the wait ends (admitted or abandoned).
#[derive(Debug)]
struct QueuePlace(Arc<Gate>);

impl Drop for QueuePlace {
    fn drop(&mut self) {
        let now = self.0.waiting.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!("rubra_admission_queue_depth").set(now as f64);
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a request of `caller` in its line and hands out what is free; the receiver holds
    /// a slot at once when one was free for this caller, else it gets one in turn. Counts
    /// `caller` as active from now (see [`ACTIVE_FOR`]).
    fn enqueue(gate: &Arc<Gate>, caller: &Option<ClientId>, waiter: Waiter) {
        {
            let mut slots = gate.lock_slots();
            let now = Instant::now();
            slots
                .seen
                .retain(|_, at| now.duration_since(*at) < ACTIVE_FOR);
            slots.usage.retain(|_, usage| !usage.is_spent(now));
            slots.seen.insert(caller.clone(), now);
            let line = slots.lines.entry(caller.clone()).or_default();
            let was_empty = line.is_empty();
            line.push_back(waiter);
            if was_empty {
                slots.turn.push_back(caller.clone());
            }
        }
        Gate::dispatch(gate);
    }

    /// Hands the free slots to waiters in turn (round robin between callers), passing over
    /// callers that may not take another now ([`Slots::may_run`]) and waiters that gave up.
    /// Slots kept free that way are handed out by a timer once the other callers are quiet.
    /// Jobs ([`Admission::run`]) start on new blocking tasks.
    fn dispatch(gate: &Arc<Gate>) {
        let kept = Gate::hand_out(gate, false);
        debug_assert!(kept.is_none());
    }

    /// [`Gate::dispatch`], except that with `keep` the first job handed a slot is returned
    /// to run on this thread instead of a new task.
    fn hand_out(gate: &Arc<Gate>, keep: bool) -> Option<(Job, Slot)> {
        let mut kept = None;
        loop {
            let next = {
                let mut slots = gate.lock_slots();
                if slots.free == 0 {
                    return kept;
                }
                let now = Instant::now();
                match slots.next_waiter(now) {
                    Some((waiter, caller)) => {
                        slots.take(&caller, now);
                        (waiter, caller, now)
                    }
                    None => {
                        if !slots.turn.is_empty() {
                            Gate::recheck_later(gate, &mut slots);
                        }
                        return kept;
                    }
                }
            };
            let (waiter, caller, started) = next;
            let slot = Slot {
                gate: Some(Arc::clone(gate)),
                caller,
                started,
            };
            match waiter {
                Waiter::Wake(tx) => {
                    if let Err(slot) = tx.send(slot) {
                        // The waiter is gone: give the slot back here (its drop would
                        // dispatch recursively).
                        slot.disarm();
                    }
                }
                Waiter::Job(job) => {
                    job.ticket.grant();
                    if keep && kept.is_none() {
                        kept = Some((job, slot));
                    } else {
                        Gate::start(gate, job, slot);
                    }
                }
            }
        }
    }

    /// Runs `job` holding `slot` on a new blocking task (on this thread outside a Tokio
    /// runtime).
    fn start(gate: &Arc<Gate>, job: Job, slot: Slot) {
        let gate = Arc::clone(gate);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || Gate::work(&gate, job, slot))),
            Err(_) => Gate::work(&gate, job, slot),
        }
    }

    /// A worker: runs `job`, then gives the slot back and runs the next job in turn itself
    /// while there is one. A freed slot's next job thus starts at once on the thread that
    /// freed it, without waking a waiting task that would then start a blocking task.
    fn work(gate: &Arc<Gate>, mut job: Job, mut slot: Slot) {
        loop {
            job.run();
            slot.disarm();
            match Gate::hand_out(gate, true) {
                Some((next, next_slot)) => (job, slot) = (next, next_slot),
                None => return,
            }
        }
    }

    /// Slots are free but every waiting caller is held back by another caller's activity:
    /// try again when the first of them may run. Outside a Tokio runtime nothing can wait,
    /// so the slots go to the waiters at once instead.
    fn recheck_later(gate: &Arc<Gate>, slots: &mut Slots) {
        if slots.recheck_pending {
            return;
        }
        let Some(at) = slots
            .turn
            .iter()
            .filter_map(|caller| slots.others_quiet_at(caller))
            .min()
        else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No timer: give up the reservation (seen as if everyone else went quiet).
            slots.seen.clear();
            return;
        };
        slots.recheck_pending = true;
        let gate = Arc::clone(gate);
        runtime.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            gate.lock_slots().recheck_pending = false;
            Gate::dispatch(&gate);
        });
    }
}

impl Admission {
    /// A gate with `slots` workers (at least 1), `max_waiting` queue places and a budget of
    /// `pixel_budget` decoded pixels, of which one caller may hold `client_share_percent`
    /// (1–100; see the type's docs for the rule).
    pub fn new(
        slots: usize,
        max_waiting: usize,
        pixel_budget: u64,
        client_share_percent: u8,
    ) -> Admission {
        let slots = slots.max(1);
        let share = u64::from(client_share_percent.clamp(1, 100));
        let places = (slots + max_waiting) as u64 * share / 100;
        Admission {
            inner: Arc::new(Gate {
                slots: Mutex::new(Slots::new(slots)),
                waiting: AtomicUsize::new(0),
                max_waiting,
                pixel_budget,
                places_per_client: usize::try_from(places).unwrap_or(usize::MAX).max(1),
                pixels_per_client: u64::try_from(
                    u128::from(pixel_budget) * u128::from(share) / 100,
                )
                .unwrap_or(u64::MAX),
                held: Mutex::new(Held::default()),
            }),
        }
    }

    /// Admits work for `who` that decodes `pixels` pixels (width × height from the header
    /// probe), waiting for a slot only when a queue place is free. Refuses at once with 503
    /// `overloaded` (and `Retry-After`) when the pixel budget or the queue is full or `who`
    /// already holds its share, and with 413 `image_too_large` when `pixels` alone exceed the
    /// whole budget.
    pub async fn admit(&self, who: &Principal, pixels: u64) -> Result<Admitted, ApiError> {
        let gate = &self.inner;
        self.fits_the_budget(pixels)?;
        let caller = caller_of(who);
        let charge = self.charge(caller.clone(), pixels)?;
        let (tx, mut line) = oneshot::channel();
        Gate::enqueue(gate, &caller, Waiter::Wake(tx));
        let slot = match line.try_recv() {
            Ok(slot) => slot,
            Err(_) => {
                // Refused here, the waiting sender is dropped with `line` and passed over.
                let place = self.queue_place()?;
                let slot = line
                    .await
                    .map_err(|_| overloaded("the server is shutting down"))?;
                drop(place);
                slot
            }
        };
        Ok(Admitted {
            _slot: slot,
            _charge: charge,
        })
    }

    /// Runs `work` for `who`, which decodes `pixels` pixels, on a blocking thread once
    /// admitted, and returns its outcome. Admission, refusals and fairness are those of
    /// [`Admission::admit`]; the difference is who starts the work: the worker thread that
    /// frees a slot runs the next admitted work itself, so a core does not idle while a
    /// waiting task is woken to start it. When the call is dropped before its work started
    /// (the client went away), the work never runs and its place and pixels are free at once.
    /// A panic in `work` is a 500 `internal`.
    pub async fn run<T, F>(&self, who: &Principal, pixels: u64, work: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let gate = &self.inner;
        self.fits_the_budget(pixels)?;
        let caller = caller_of(who);
        let charge = self.charge(caller.clone(), pixels)?;
        let ticket = Arc::new(Ticket(Mutex::new(TicketState::Waiting {
            charge,
            place: None,
            granted: false,
        })));
        let _give_up = GiveUpOnDrop(Arc::clone(&ticket));
        let (tx, outcome) = oneshot::channel();
        let job = Job {
            ticket: Arc::clone(&ticket),
            work: Box::new(move |charge| {
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
                drop(charge);
                let _ = tx.send(out);
            }),
        };
        Gate::enqueue(gate, &caller, Waiter::Job(job));
        {
            let mut state = ticket.lock();
            if let TicketState::Waiting {
                place,
                granted: false,
                ..
            } = &mut *state
            {
                // Not handed a slot at once: it waits, in a queue place (or is refused, and
                // then passed over when its turn comes).
                match self.queue_place() {
                    Ok(p) => *place = Some(p),
                    Err(e) => {
                        *state = TicketState::GaveUp;
                        return Err(e);
                    }
                }
            }
        }
        match outcome.await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(_panic)) => Err(ApiError::internal(&"the admitted work panicked")),
            Err(_) => Err(overloaded("the server is shutting down")),
        }
    }

    /// Refuses with 413 `image_too_large` an image whose `pixels` alone exceed the budget.
    fn fits_the_budget(&self, pixels: u64) -> Result<(), ApiError> {
        let budget = self.inner.pixel_budget;
        if pixels > budget {
            return Err(ApiError::new(
                ErrorCode::ImageTooLarge,
                format!(
                    "the image has {pixels} pixels; this server decodes at most {budget} pixels \
                     at a time (max-decode-pixels-in-flight)"
                ),
            ));
        }
        Ok(())
    }

    /// Counts one place and `pixels` against the caller's share and the budget, or refuses
    /// when they do not fit now. Waiting requests hold their place and pixels too, so one that
    /// was admitted to the queue is never refused later for memory.
    fn charge(&self, caller: Option<ClientId>, pixels: u64) -> Result<Charge, ApiError> {
        let gate = &self.inner;
        let now = {
            let mut held = gate.lock();
            let mine = held.by_caller.get(&caller).copied().unwrap_or_default();
            if mine.places >= gate.places_per_client {
                drop(held);
                return Err(overloaded(&format!(
                    "this client already has {} image requests running or waiting, its share \
                     of the server (admission-client-share)",
                    mine.places
                )));
            }
            if mine.pixels > 0 && mine.pixels.saturating_add(pixels) > gate.pixels_per_client {
                drop(held);
                return Err(overloaded(
                    "this client already has its share of the image pixels being decoded \
                     (admission-client-share)",
                ));
            }
            let next = held.pixels.saturating_add(pixels);
            if next > gate.pixel_budget {
                drop(held);
                return Err(overloaded(
                    "too many image pixels are being decoded at the moment",
                ));
            }
            held.pixels = next;
            let share = held.by_caller.entry(caller.clone()).or_default();
            share.places += 1;
            share.pixels += pixels;
            next
        };
        metrics::gauge!("rubra_decode_pixels_in_flight").set(now as f64);
        Ok(Charge {
            gate: Arc::clone(gate),
            caller,
            pixels,
        })
    }

    fn queue_place(&self) -> Result<QueuePlace, ApiError> {
        let gate = &self.inner;
        let before = gate.waiting.fetch_add(1, Ordering::AcqRel);
        let place = QueuePlace(Arc::clone(gate));
        if before >= gate.max_waiting {
            drop(place);
            return Err(overloaded(
                "every worker is busy and the wait queue is full",
            ));
        }
        metrics::gauge!("rubra_admission_queue_depth").set((before + 1) as f64);
        Ok(place)
    }
}

fn overloaded(why: &str) -> ApiError {
    count_rejection("overloaded");
    ApiError::new(ErrorCode::Overloaded, format!("{why}; retry in a moment"))
        .with_retry_after(RETRY_AFTER_SECS)
}

/// Open Server-Sent Event streams per caller, at most `per_client` each. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamCaps {
    inner: Arc<StreamCounts>,
}

#[derive(Debug)]
struct StreamCounts {
    per_client: usize,
    /// Open streams by caller; `None` is the admin.
    open: Mutex<HashMap<Option<ClientId>, usize>>,
    total: AtomicUsize,
}

/// One open stream, counted against its caller until dropped: move it into the task that
/// feeds the stream, which ends when the client goes away.
#[derive(Debug)]
pub struct StreamSlot {
    counts: Arc<StreamCounts>,
    caller: Option<ClientId>,
}

impl StreamCaps {
    /// Caps that allow `per_client` open streams per caller.
    pub fn new(per_client: usize) -> StreamCaps {
        StreamCaps {
            inner: Arc::new(StreamCounts {
                per_client,
                open: Mutex::new(HashMap::new()),
                total: AtomicUsize::new(0),
            }),
        }
    }

    /// Opens a stream for `who` (admin keys share one count), or refuses with 429
    /// `too_many_streams` when the caller already has `per_client` open.
    pub fn open(&self, who: &Principal) -> Result<StreamSlot, ApiError> {
        let counts = &self.inner;
        let caller = caller_of(who);
        {
            let mut open = counts.open.lock().unwrap_or_else(|e| e.into_inner());
            let n = open.entry(caller.clone()).or_insert(0);
            if *n >= counts.per_client {
                drop(open);
                count_rejection("too_many_streams");
                return Err(ApiError::new(
                    ErrorCode::TooManyStreams,
                    format!(
                        "at most {} streams may be open per client (max-streams-per-client); \
                         close one first",
                        counts.per_client
                    ),
                )
                .with_retry_after(RETRY_AFTER_SECS));
            }
            *n += 1;
        }
        let total = counts.total.fetch_add(1, Ordering::AcqRel) + 1;
        metrics::gauge!("rubra_streams_open").set(total as f64);
        Ok(StreamSlot {
            counts: Arc::clone(counts),
            caller,
        })
    }

    /// Streams open now for `who`.
    pub fn open_for(&self, who: &Principal) -> usize {
        let open = self.inner.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&caller_of(who)).copied().unwrap_or(0)
    }
}

fn caller_of(who: &Principal) -> Option<ClientId> {
    match who {
        Principal::Client(id) => Some(id.clone()),
        Principal::Admin => None,
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        {
            let mut open = self.counts.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&self.caller) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.caller);
                }
            }
        }
        let total = self.counts.total.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!("rubra_streams_open").set(total as f64);
    }
}

/// The default budget of decoded pixels in flight: a quarter of the memory this process may
/// use (the cgroup limit when lower than the physical memory) at 8 bytes per pixel (16-bit
/// RGBA, the most a decoder holds per pixel), never below `max_pixels` so that the largest
/// accepted image can always be decoded; 200 000 000 pixels (1.6 GB) when the memory cannot
/// be read.
pub fn default_pixel_budget(max_pixels: u64) -> u64 {
    let budget = match usable_memory_bytes() {
        Some(bytes) => bytes / 4 / 8,
        None => 200_000_000,
    };
    budget.max(max_pixels)
}

/// Physical memory, or the cgroup v2 limit when lower (Linux); `None` elsewhere.
fn usable_memory_bytes() -> Option<u64> {
    let physical = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024))
        })?;
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    Some(cgroup.map_or(physical, |c| c.min(physical)))
}

/// The cores this process may use (at least 1): the size of the admission pool.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ME: Principal = Principal::Admin;

    #[test]
    fn by_default_one_client_may_run_eight_image_requests_at_once() {
        for cores in [1, 2, 4, 16, 64] {
            let queue = crate::settings::default_admission_queue(cores);
            let gate = Admission::new(cores, queue, 1 << 40, 50);
            assert!(
                gate.inner.places_per_client >= 8,
                "{cores} cores: {} places",
                gate.inner.places_per_client
            );
        }
    }

    /// Issue #18, the noisy-neighbour benchmark: waiters were served first come, first
    /// served, so another client's image waited behind every image the flood had queued.
    #[tokio::test]
    async fn another_clients_waiting_image_gets_the_next_slot_not_the_end_of_the_floods_line() {
        let flood = Principal::Client(ClientId::parse("cl_00000000000000aa").unwrap());
        let polite = Principal::Client(ClientId::parse("cl_00000000000000bb").unwrap());
        let gate = Admission::new(1, 16, 1 << 30, 100);
        let running = gate.admit(&flood, 10).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (g, f, tx) = (gate.clone(), flood.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                let admitted = g.admit(&f, 10).await.unwrap();
                tx.send("flood").unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(admitted);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (g, p) = (gate.clone(), polite.clone());
        tasks.push(tokio::spawn(async move {
            let admitted = g.admit(&p, 10).await.unwrap();
            tx.send("polite").unwrap();
            drop(admitted);
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(running);
        for t in tasks {
            t.await.unwrap();
        }
        let mut order = Vec::new();
        while let Ok(who) = rx.try_recv() {
            order.push(who);
        }
        let at = order.iter().position(|w| *w == "polite").unwrap();
        assert!(at <= 1, "the polite image ran {}th: {order:?}", at + 1);
    }

    /// Issue #18, the noisy-neighbour benchmark: with round robin alone, a flood that keeps
    /// every slot busy still makes another client's image wait out a whole decode of the
    /// flood's. While another client is active, one slot stays free for it.
    #[tokio::test]
    async fn a_flood_never_holds_every_slot_while_another_client_is_active() {
        let flood = Principal::Client(ClientId::parse("cl_00000000000000aa").unwrap());
        let polite = Principal::Client(ClientId::parse("cl_00000000000000bb").unwrap());
        let gate = Admission::new(2, 16, 1 << 30, 100);
        // Alone, the flood may use both slots.
        let first = gate.admit(&flood, 10).await.unwrap();
        let second = gate.admit(&flood, 10).await.unwrap();
        drop((first, second));
        // The polite client shows up; from now on the flood runs on one slot only.
        drop(gate.admit(&polite, 10).await.unwrap());
        let running = gate.admit(&flood, 10).await.unwrap();
        let (g, f) = (gate.clone(), flood.clone());
        let queued = tokio::spawn(async move { g.admit(&f, 10).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !queued.is_finished(),
            "the flood took the last slot while another client was active"
        );
        // The polite client's image is admitted at once, without waiting for the flood's.
        let admitted = tokio::time::timeout(Duration::from_millis(100), gate.admit(&polite, 10))
            .await
            .expect("the polite image waited for a slot")
            .unwrap();
        drop(admitted);
        drop(running);
        // Once the polite client has been quiet for ACTIVE_FOR, the flood gets both slots.
        let queued = tokio::time::timeout(ACTIVE_FOR * 3, queued)
            .await
            .expect("the flood's waiter was never admitted")
            .unwrap();
        let other = tokio::time::timeout(ACTIVE_FOR * 3, gate.admit(&flood, 10))
            .await
            .expect("the flood never got the second slot back")
            .unwrap();
        drop((queued, other));
    }

    /// The reservation is for the lighter clients, not against them: the polite client (20
    /// images a second) often has one image running when its next arrives; capping every
    /// client at all slots but one made it queue behind itself while the flood was active.
    #[tokio::test]
    async fn a_light_client_may_take_the_last_slot_while_the_heavy_one_is_active() {
        let flood = Principal::Client(ClientId::parse("cl_00000000000000aa").unwrap());
        let polite = Principal::Client(ClientId::parse("cl_00000000000000bb").unwrap());
        let gate = Admission::new(2, 16, 1 << 30, 100);
        let heavy = gate.admit(&flood, 10).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(heavy);
        let first = gate.admit(&polite, 10).await.unwrap();
        let second = tokio::time::timeout(Duration::from_millis(200), gate.admit(&polite, 10))
            .await
            .expect("the light client queued behind itself with a slot free")
            .unwrap();
        drop((first, second));
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_passes_its_turn_on() {
        let a = Principal::Client(ClientId::parse("cl_00000000000000aa").unwrap());
        let b = Principal::Client(ClientId::parse("cl_00000000000000bb").unwrap());
        let gate = Admission::new(1, 16, 1 << 30, 100);
        let running = gate.admit(&a, 10).await.unwrap();
        let abandoned = {
            let g = gate.clone();
            let a = a.clone();
            tokio::spawn(async move { g.admit(&a, 10).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let waiting = {
            let g = gate.clone();
            tokio::spawn(async move { g.admit(&b, 10).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        abandoned.abort();
        let _ = abandoned.await;
        drop(running);
        tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("the slot reached the next waiter")
            .unwrap()
            .unwrap();
        // And the slot is free again afterwards.
        assert_eq!(gate.inner.lock_slots().free, 1);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_freed_slot_admits_the_waiter() {
        let gate = Admission::new(1, 1, 1_000, 100);
        let running = gate.admit(&ME, 10).await.unwrap();
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.admit(&ME, 10).await.map(drop) })
        };
        while gate.inner.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        let refused = gate.admit(&ME, 10).await.unwrap_err();
        assert_eq!(
            (refused.status().as_u16(), refused.code()),
            (503, "overloaded")
        );
        drop(running);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(gate.inner.lock().pixels, 0);
        assert_eq!(gate.inner.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn pixels_over_the_budget_are_refused_and_given_back() {
        let gate = Admission::new(4, 4, 100, 100);
        let held = gate.admit(&ME, 60).await.unwrap();
        assert_eq!(gate.admit(&ME, 50).await.unwrap_err().code(), "overloaded");
        assert_eq!(
            gate.admit(&ME, 101).await.unwrap_err().code(),
            "image_too_large"
        );
        drop(held);
        gate.admit(&ME, 100).await.unwrap();
        assert_eq!(gate.inner.lock().pixels, 0);
    }

    #[tokio::test]
    async fn an_abandoned_wait_gives_back_its_place_and_pixels() {
        let gate = Admission::new(1, 1, 1_000, 100);
        let _running = gate.admit(&ME, 10).await.unwrap();
        let abandoned = tokio::time::timeout(Duration::from_millis(20), gate.admit(&ME, 10)).await;
        assert!(abandoned.is_err(), "still waiting");
        assert_eq!(gate.inner.waiting.load(Ordering::Acquire), 0);
        assert_eq!(gate.inner.lock().pixels, 10);
    }

    #[tokio::test]
    async fn one_caller_holds_at_most_its_share_of_the_places_and_pixels() {
        // 3 slots + 1 waiting place, half each: 2 places and 500 pixels per caller (and a
        // slot for every request below, so none of them waits).
        let gate = Admission::new(3, 1, 1_000, 50);
        let (a, b) = (
            Principal::Client(ClientId::generate()),
            Principal::Client(ClientId::generate()),
        );
        // A first image may be larger than the share; nothing more then fits the share.
        let big = gate.admit(&a, 700).await.unwrap();
        assert_eq!(gate.admit(&a, 1).await.unwrap_err().code(), "overloaded");
        let other = gate.admit(&b, 300).await.unwrap();
        drop((big, other));
        let a1 = gate.admit(&a, 250).await.unwrap();
        let a2 = gate.admit(&a, 250).await.unwrap();
        let refused = gate.admit(&a, 1).await.unwrap_err();
        assert_eq!(
            (refused.status().as_u16(), refused.code()),
            (503, "overloaded")
        );
        // Admin keys are one caller of their own.
        let admin = gate.admit(&ME, 100).await.unwrap();
        drop(a1);
        let a3 = gate.admit(&a, 250).await.unwrap();
        drop((a2, a3, admin));
        assert_eq!(gate.inner.lock().pixels, 0);
        assert!(gate.inner.lock().by_caller.is_empty());
    }

    /// Yields until `busy` of the gate's slots are taken.
    async fn until_running(gate: &Admission, busy: usize) {
        loop {
            let (free, total) = {
                let slots = gate.inner.lock_slots();
                (slots.free, slots.total)
            };
            if free + busy == total {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    /// A job of 10 pixels for `who` that holds a slot of an idle gate until released;
    /// returns once it runs.
    async fn occupy(
        gate: &Admission,
        who: &Principal,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<Result<(), std::sync::mpsc::RecvError>, ApiError>>,
    ) {
        let (release, waits) = std::sync::mpsc::channel::<()>();
        let (g, w) = (gate.clone(), who.clone());
        let running = tokio::spawn(async move { g.run(&w, 10, move || waits.recv()).await });
        until_running(gate, 1).await;
        (release, running)
    }

    /// Yields until `n` requests wait for a slot.
    async fn until_waiting(gate: &Admission, n: usize) {
        while gate.inner.waiting.load(Ordering::Acquire) != n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn run_returns_the_outcome_and_gives_back_the_slot_and_pixels() {
        let gate = Admission::new(2, 4, 1_000, 100);
        assert_eq!(gate.run(&ME, 100, || 6 * 7).await.unwrap(), 42);
        // The pixels are given back before the outcome is sent, the slot just after.
        assert_eq!(gate.inner.lock().pixels, 0);
        until_running(&gate, 0).await;
        let refused = gate.run(&ME, 1_001, || ()).await.unwrap_err();
        assert_eq!(refused.code(), "image_too_large");
    }

    /// Issue #24: with as many slots as cores a core idled at each hand-off, because a freed
    /// slot went to a waiting task that first had to be woken on the event loop to start its
    /// work on the blocking pool. The thread that frees the slot now starts the next job
    /// itself: here the event loop (a current-thread runtime) is blocked while it must start.
    #[tokio::test]
    async fn a_freed_slot_starts_the_next_job_without_the_event_loop() {
        let gate = Admission::new(1, 16, 1 << 30, 100);
        let (release_first, first_waits) = std::sync::mpsc::channel::<()>();
        let (second_started, second_runs) = std::sync::mpsc::channel::<()>();
        let g = gate.clone();
        let first =
            tokio::spawn(async move { g.run(&ME, 10, move || first_waits.recv().unwrap()).await });
        until_running(&gate, 1).await;
        let g = gate.clone();
        let second = tokio::spawn(async move {
            g.run(&ME, 10, move || second_started.send(()).unwrap())
                .await
        });
        until_waiting(&gate, 1).await;
        release_first.send(()).unwrap();
        // Blocking the only event-loop thread on purpose.
        let started = second_runs.recv_timeout(Duration::from_secs(5));
        assert!(
            started.is_ok(),
            "the next job waited for the event loop to start it"
        );
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        until_running(&gate, 0).await;
    }

    #[tokio::test]
    async fn a_job_whose_request_went_away_never_runs_and_frees_its_pixels_at_once() {
        let gate = Admission::new(1, 16, 1_000, 100);
        let (release, running) = occupy(&gate, &ME).await;
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (g, r) = (gate.clone(), Arc::clone(&ran));
        let abandoned = tokio::spawn(async move {
            g.run(&ME, 20, move || r.store(true, Ordering::Release))
                .await
        });
        until_waiting(&gate, 1).await;
        abandoned.abort();
        let _ = abandoned.await;
        assert_eq!(gate.inner.lock().pixels, 10);
        assert_eq!(gate.inner.waiting.load(Ordering::Acquire), 0);
        release.send(()).unwrap();
        running.await.unwrap().unwrap().unwrap();
        // The slot is free again and the abandoned job was passed over.
        assert_eq!(gate.run(&ME, 10, || 1).await.unwrap(), 1);
        assert!(!ran.load(Ordering::Acquire));
        until_running(&gate, 0).await;
        assert_eq!(gate.inner.lock().pixels, 0);
    }

    #[tokio::test]
    async fn a_job_refused_a_queue_place_is_503_and_never_runs() {
        let gate = Admission::new(1, 1, 1_000, 100);
        let (release, running) = occupy(&gate, &ME).await;
        let g = gate.clone();
        let queued = tokio::spawn(async move { g.run(&ME, 10, || 2).await });
        until_waiting(&gate, 1).await;
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = Arc::clone(&ran);
        let refused = gate
            .run(&ME, 10, move || r.store(true, Ordering::Release))
            .await
            .unwrap_err();
        assert_eq!(
            (refused.status().as_u16(), refused.code()),
            (503, "overloaded")
        );
        release.send(()).unwrap();
        running.await.unwrap().unwrap().unwrap();
        assert_eq!(queued.await.unwrap().unwrap(), 2);
        assert!(!ran.load(Ordering::Acquire));
        assert_eq!(gate.inner.lock().pixels, 0);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_internal_error_and_frees_its_slot() {
        let gate = Admission::new(1, 4, 1_000, 100);
        let err = gate
            .run(&ME, 10, || -> u8 { panic!("a bug in the work") })
            .await
            .unwrap_err();
        assert_eq!(err.code(), "internal");
        assert_eq!(gate.run(&ME, 10, || 3).await.unwrap(), 3);
        assert_eq!(gate.inner.lock().pixels, 0);
    }

    /// The fairness of `admit` holds for jobs handed on by a worker thread too.
    #[tokio::test]
    async fn a_freed_slot_goes_to_the_next_caller_in_turn_not_the_floods_next_job() {
        let flood = Principal::Client(ClientId::parse("cl_00000000000000aa").unwrap());
        let polite = Principal::Client(ClientId::parse("cl_00000000000000bb").unwrap());
        let gate = Admission::new(1, 16, 1 << 30, 100);
        let order = Arc::new(Mutex::new(Vec::new()));
        let (release, running) = occupy(&gate, &flood).await;
        let mut tasks = Vec::new();
        for (i, who) in [&flood, &flood, &flood, &polite].into_iter().enumerate() {
            let (g, w, o) = (gate.clone(), who.clone(), Arc::clone(&order));
            let name = if i < 3 { "flood" } else { "polite" };
            tasks.push(tokio::spawn(async move {
                g.run(&w, 10, move || o.lock().unwrap().push(name)).await
            }));
            until_waiting(&gate, i + 1).await;
        }
        release.send(()).unwrap();
        running.await.unwrap().unwrap().unwrap();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let order = order.lock().unwrap().clone();
        let at = order.iter().position(|w| *w == "polite").unwrap();
        assert!(at <= 1, "the polite job ran {}th: {order:?}", at + 1);
    }

    #[test]
    fn streams_are_capped_per_caller_and_counted_down_on_close() {
        let caps = StreamCaps::new(2);
        let a = Principal::Client(ClientId::generate());
        let b = Principal::Admin;
        let a1 = caps.open(&a).unwrap();
        let _a2 = caps.open(&a).unwrap();
        assert_eq!(caps.open(&a).unwrap_err().code(), "too_many_streams");
        let _b = caps.open(&b).unwrap();
        drop(a1);
        assert_eq!(caps.open_for(&a), 1);
        let _a3 = caps.open(&a).unwrap();
        assert_eq!(caps.open_for(&b), 1);
    }

    #[test]
    fn the_default_budget_holds_the_largest_image() {
        assert!(default_pixel_budget(u64::MAX) == u64::MAX);
        assert!(default_pixel_budget(1) >= 1);
    }
}
