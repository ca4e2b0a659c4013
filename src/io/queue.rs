//! A small queue between threads: any number of senders, one receiver
//! that polls it (woken by a [`super::sys::Waker`]) or waits on it, until
//! it is closed. lassi's threads use it rather than `std::sync::mpsc`,
//! whose three channel flavours cost the router builds about 8 KB per
//! message type; traffic through it is a few messages per batch of frames.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// The queue.
pub struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    ready: Condvar,
    closed: AtomicBool,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            items: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            closed: AtomicBool::new(false),
        }
    }
}

impl<T> Queue<T> {
    /// A thread that panicked while holding the lock left the queue
    /// consistent (push and pop cannot fail half-way): carry on.
    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Add `item` at the back.
    pub fn push(&self, item: T) {
        self.lock().push_back(item);
        self.ready.notify_one();
    }

    /// Add `item` unless the queue was closed (then it comes back).
    pub fn send(&self, item: T) -> Result<(), T> {
        if self.is_closed() {
            return Err(item);
        }
        self.push(item);
        Ok(())
    }

    /// No more items are wanted (the receiver is going) or will come (the
    /// sender is gone): waiting receivers wake.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _guard = self.lock(); // no receiver between its check and its wait
        self.ready.notify_all();
    }

    /// Whether [`Queue::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The front item, waiting for one; `None` once the queue is closed and
    /// empty.
    pub fn pop_wait(&self) -> Option<T> {
        let mut items = self.lock();
        loop {
            if let Some(item) = items.pop_front() {
                return Some(item);
            }
            if self.is_closed() {
                return None;
            }
            items = self
                .ready
                .wait(items)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The front item, if any.
    pub fn pop(&self) -> Option<T> {
        self.lock().pop_front()
    }

    /// The front item, waiting for one until `deadline`.
    pub fn pop_until(&self, deadline: Instant) -> Option<T> {
        let mut items = self.lock();
        loop {
            if let Some(item) = items.pop_front() {
                return Some(item);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            items = (self.ready.wait_timeout(items, left))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn items_come_out_in_order_and_a_wait_ends_at_its_deadline() {
        let q = Queue::default();
        q.push(1);
        q.push(2);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop_until(Instant::now()), Some(2));
        let start = Instant::now();
        assert_eq!(q.pop_until(start + Duration::from_millis(20)), None);
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn closing_ends_a_wait_after_the_last_item_and_refuses_more() {
        let q = Arc::new(Queue::default());
        q.push(1);
        let closer = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            closer.close();
        });
        assert_eq!(q.pop_wait(), Some(1));
        assert_eq!(q.pop_wait(), None, "closed and empty");
        t.join().unwrap();
        assert_eq!(q.send(2), Err(2));
    }

    #[test]
    fn a_waiting_receiver_gets_what_another_thread_sends() {
        let q = Arc::new(Queue::default());
        let sender = q.clone();
        let t = std::thread::spawn(move || (0..100).for_each(|i| sender.push(i)));
        let deadline = Instant::now() + Duration::from_secs(10);
        let got: Vec<i32> = (0..100).map_while(|_| q.pop_until(deadline)).collect();
        t.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }
}
