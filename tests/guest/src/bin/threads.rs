//! Threads, locks, channels, condition variables, thread-locals and preemption.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, RwLock, mpsc};
use std::time::{Duration, Instant};

thread_local! {
    static LOCAL: Cell<u32> = const { Cell::new(1) };
    static DROPS: Dropper = const { Dropper };
}

static DESTRUCTORS: AtomicUsize = AtomicUsize::new(0);

struct Dropper;

impl Drop for Dropper {
    fn drop(&mut self) {
        DESTRUCTORS.fetch_add(1, Ordering::SeqCst);
    }
}

fn main() {
    let h = std::thread::Builder::new().name("worker".into()).spawn(|| {
        std::thread::current().name().map(str::to_owned)
    });
    println!("named thread: {:?}", h.unwrap().join().unwrap());

    let counter = Arc::new(Mutex::new(0u64));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let counter = counter.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    *counter.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    println!("mutex total: {}", *counter.lock().unwrap());

    let (tx, rx) = mpsc::channel();
    for producer in 0..8u64 {
        let tx = tx.clone();
        std::thread::spawn(move || (0..1000).for_each(|i| tx.send(producer * 1000 + i).unwrap()));
    }
    drop(tx);
    let sum: u64 = rx.iter().sum();
    println!("mpsc sum: {sum}");

    let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    let other = pair.clone();
    let ponger = std::thread::spawn(move || {
        let (lock, cvar) = &*other;
        for round in 0..10_000u32 {
            let mut turn = cvar.wait_while(lock.lock().unwrap(), |t| *t != round * 2 + 1).unwrap();
            *turn += 1;
            cvar.notify_one();
        }
    });
    let (lock, cvar) = &*pair;
    for round in 0..10_000u32 {
        let mut turn = cvar.wait_while(lock.lock().unwrap(), |t| *t != round * 2).unwrap();
        *turn += 1;
        cvar.notify_one();
    }
    ponger.join().unwrap();
    println!("condvar round trips: {}", *lock.lock().unwrap() / 2);

    let table = Arc::new(RwLock::new(vec![0u32; 16]));
    let rw: Vec<_> = (0..8)
        .map(|i| {
            let table = table.clone();
            std::thread::spawn(move || {
                for _ in 0..500 {
                    if i % 4 == 0 {
                        table.write().unwrap().iter_mut().for_each(|x| *x += 1);
                    } else {
                        let t = table.read().unwrap();
                        assert!(t.iter().all(|&x| x == t[0]), "a reader saw a torn write");
                    }
                }
            })
        })
        .collect();
    rw.into_iter().for_each(|h| h.join().unwrap());
    println!("rwlock value: {}", table.read().unwrap()[0]);

    let barrier = Arc::new(Barrier::new(10));
    let leaders = Arc::new(AtomicUsize::new(0));
    let bs: Vec<_> = (0..10)
        .map(|_| {
            let (barrier, leaders) = (barrier.clone(), leaders.clone());
            std::thread::spawn(move || {
                if barrier.wait().is_leader() {
                    leaders.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    bs.into_iter().for_each(|h| h.join().unwrap());
    println!("barrier leaders: {}", leaders.load(Ordering::SeqCst));

    LOCAL.with(|l| l.set(5));
    let seen = std::thread::spawn(|| {
        DROPS.with(|_| ());
        LOCAL.with(|l| l.get())
    });
    println!("thread-local in a new thread: {}", seen.join().unwrap());
    println!("thread-local in main: {}", LOCAL.with(|l| l.get()));
    println!("destructors run: {}", DESTRUCTORS.load(Ordering::SeqCst));

    let stop = Arc::new(AtomicBool::new(false));
    let spin = stop.clone();
    let spinner = std::thread::spawn(move || while !spin.load(Ordering::Relaxed) {});
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(30));
    println!("a spinning thread does not stop others: {}", start.elapsed() >= Duration::from_millis(30));
    stop.store(true, Ordering::Relaxed);
    spinner.join().unwrap();

    let alive = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut batch = Vec::new();
    for _ in 0..10_000 {
        let (alive, peak) = (alive.clone(), peak.clone());
        batch.push(std::thread::spawn(move || {
            let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            alive.fetch_sub(1, Ordering::SeqCst);
        }));
        if batch.len() == 64 {
            batch.drain(..).for_each(|h| h.join().unwrap());
        }
    }
    batch.into_iter().for_each(|h| h.join().unwrap());
    println!("10000 threads joined, at most 64 alive: {}", peak.load(Ordering::SeqCst) <= 64);

    let result = std::thread::spawn(|| panic!("a thread gives up")).join();
    let payload = result.unwrap_err();
    println!("panicking thread's join: Err({:?})", payload.downcast_ref::<&str>());
}
