//! Per-project limits: open sockets, and joins and messages per second.
//!
//! A project's counters exist while it has sockets in this process, so an
//! idle project costs nothing; rates are counted in one-second windows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use supa_core::ProjectRef;

/// A count within the current second.
#[derive(Debug, Default)]
pub(crate) struct Window {
    second: AtomicU64,
    count: AtomicU32,
}

impl Window {
    /// Counts one more; false when that is over `max` this second.
    pub(crate) fn allow(&self, max: u32) -> bool {
        self.allow_at(supa_core::time::since_epoch().as_secs(), max)
    }

    fn allow_at(&self, now: u64, max: u32) -> bool {
        if self.second.swap(now, Ordering::Relaxed) != now {
            self.count.store(0, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed) < max
    }
}

/// One project's counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    sockets: AtomicU32,
    pub(crate) joins: Window,
    pub(crate) events: Window,
    pub(crate) presence: Window,
}

/// Every project's counters; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Limits {
    projects: Arc<Mutex<HashMap<ProjectRef, Arc<Counters>>>>,
}

/// A socket's place in its project's count, given back when dropped.
#[derive(Debug)]
pub(crate) struct Usage {
    limits: Limits,
    project: ProjectRef,
    pub(crate) counters: Arc<Counters>,
}

impl Limits {
    /// A place for one more socket of `project`, unless it has `max`.
    pub(crate) fn connect(&self, project: ProjectRef, max: u32) -> Option<Usage> {
        let mut projects = self.projects.lock().unwrap_or_else(PoisonError::into_inner);
        let counters = projects.entry(project).or_default().clone();
        if counters.sockets.load(Ordering::Relaxed) >= max {
            return None;
        }
        counters.sockets.fetch_add(1, Ordering::Relaxed);
        Some(Usage {
            limits: self.clone(),
            project,
            counters,
        })
    }
}

impl Drop for Usage {
    fn drop(&mut self) {
        let mut projects = self
            .limits
            .projects
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.counters.sockets.fetch_sub(1, Ordering::Relaxed) == 1 {
            projects.remove(&self.project);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_counted_and_released() {
        let limits = Limits::default();
        let p = ProjectRef::parse("limitslimitslimitsli").unwrap();
        let a = limits.connect(p, 2).unwrap();
        let b = limits.connect(p, 2).unwrap();
        assert!(limits.connect(p, 2).is_none());
        drop(a);
        let c = limits.connect(p, 2).unwrap();
        drop((b, c));
        assert!(limits.projects.lock().unwrap().is_empty());
    }

    #[test]
    fn windows_allow_up_to_the_limit() {
        let w = Window::default();
        assert!((0..5).all(|_| w.allow_at(100, 5)));
        assert!(!w.allow_at(100, 5));
        assert!(w.allow_at(101, 5));
    }
}
