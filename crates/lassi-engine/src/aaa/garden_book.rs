//! The walled garden's entries and where each came from: the configuration
//! (`portal.walled_garden`, replaced as a whole by a reload) or the
//! operator (`lassi garden add`, runtime only). The shell derives from it
//! what the data plane opens (networks, `*.domain` suffixes) and which host
//! names the resolver keeps resolving ([`super::garden::GardenRefresh`]).

use std::fmt;

use serde::Serialize;

use crate::wire::ipv6::Ipv6Net;
use crate::wire::Ipv4Net;

/// One walled-garden entry (the shell parses `portal.walled_garden`'s syntax).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GardenEntry {
    /// An address or network.
    Net(Ipv4Net),
    /// An IPv6 address or network.
    Net6(Ipv6Net),
    /// A host name, resolved and refreshed.
    Host(String),
    /// `*.example.org`: names under the suffix, learnt from DNS answers.
    Suffix(String),
}

impl fmt::Display for GardenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GardenEntry::Net(n) if n.prefix == 32 => write!(f, "{}", n.addr),
            GardenEntry::Net(n) => write!(f, "{n}"),
            GardenEntry::Net6(n) if n.len() == 128 => write!(f, "{}", n.addr()),
            GardenEntry::Net6(n) => write!(f, "{n}"),
            GardenEntry::Host(h) => f.write_str(h),
            GardenEntry::Suffix(s) => write!(f, "*.{s}"),
        }
    }
}

impl Serialize for GardenEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where an entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `portal.walled_garden`.
    Configured,
    /// `lassi garden add` (lost at restart).
    Operator,
}

/// Why a live edit was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GardenEditError {
    /// `add` of an entry the garden has already, from this origin.
    AlreadyThere(GardenEntry, Origin),
    /// `remove` of a configured entry: that is the config file's business.
    Configured(GardenEntry),
    /// `remove` of an entry that is not in the garden.
    NotFound(GardenEntry),
}

impl fmt::Display for GardenEditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GardenEditError::AlreadyThere(e, Origin::Configured) => {
                write!(f, "{e} is already in the walled garden (configured)")
            }
            GardenEditError::AlreadyThere(e, Origin::Operator) => {
                write!(
                    f,
                    "{e} is already in the walled garden (added by an operator)"
                )
            }
            GardenEditError::Configured(e) => write!(
                f,
                "{e} is configured in portal.walled_garden: edit the config file and reload"
            ),
            GardenEditError::NotFound(e) => write!(f, "{e} is not in the walled garden"),
        }
    }
}

impl std::error::Error for GardenEditError {}

/// The garden's entries by origin.
#[derive(Clone, Debug, Default)]
pub struct GardenBook {
    configured: Vec<GardenEntry>,
    operator: Vec<GardenEntry>,
}

impl GardenBook {
    /// A garden holding the configured entries.
    pub fn new(configured: Vec<GardenEntry>) -> Self {
        let mut book = GardenBook::default();
        book.set_configured(configured);
        book
    }

    /// Replace the configured entries (a reload); operator entries stay.
    /// An operator entry that is now configured too is kept, so removing it
    /// from the config later does not close what the operator opened.
    pub fn set_configured(&mut self, mut configured: Vec<GardenEntry>) {
        let mut unique: Vec<GardenEntry> = Vec::with_capacity(configured.len());
        for e in configured.drain(..) {
            if !unique.contains(&e) {
                unique.push(e);
            }
        }
        self.configured = unique;
    }

    /// Add an operator entry.
    pub fn add(&mut self, entry: GardenEntry) -> Result<(), GardenEditError> {
        if let Some(origin) = self.origin(&entry) {
            return Err(GardenEditError::AlreadyThere(entry, origin));
        }
        self.operator.push(entry);
        Ok(())
    }

    /// Remove an operator entry.
    pub fn remove(&mut self, entry: &GardenEntry) -> Result<(), GardenEditError> {
        if let Some(i) = self.operator.iter().position(|e| e == entry) {
            self.operator.remove(i);
            return Ok(());
        }
        Err(if self.configured.contains(entry) {
            GardenEditError::Configured(entry.clone())
        } else {
            GardenEditError::NotFound(entry.clone())
        })
    }

    /// Where `entry` came from, if it is in the garden (configured wins).
    pub fn origin(&self, entry: &GardenEntry) -> Option<Origin> {
        if self.configured.contains(entry) {
            Some(Origin::Configured)
        } else if self.operator.contains(entry) {
            Some(Origin::Operator)
        } else {
            None
        }
    }

    /// Every entry with its origin: configured first, then the operator's,
    /// each in the order given.
    pub fn entries(&self) -> Vec<(GardenEntry, Origin)> {
        let configured = self
            .configured
            .iter()
            .map(|e| (e.clone(), Origin::Configured));
        let operator = (self.operator.iter())
            .filter(|e| !self.configured.contains(e))
            .map(|e| (e.clone(), Origin::Operator));
        configured.chain(operator).collect()
    }

    fn all(&self) -> impl Iterator<Item = &GardenEntry> {
        self.configured.iter().chain(&self.operator)
    }

    /// The networks of both origins, without repeats.
    pub fn nets(&self) -> Vec<Ipv4Net> {
        let mut out: Vec<Ipv4Net> = Vec::new();
        for e in self.all() {
            if let GardenEntry::Net(n) = e {
                if !out.contains(n) {
                    out.push(*n);
                }
            }
        }
        out
    }

    /// The IPv6 networks of both origins, without repeats.
    pub fn nets6(&self) -> Vec<Ipv6Net> {
        let mut out: Vec<Ipv6Net> = Vec::new();
        for e in self.all() {
            if let GardenEntry::Net6(n) = e {
                if !out.contains(n) {
                    out.push(*n);
                }
            }
        }
        out
    }

    /// The host names of both origins, without repeats.
    pub fn hosts(&self) -> Vec<String> {
        self.names(|e| match e {
            GardenEntry::Host(h) => Some(h),
            _ => None,
        })
    }

    /// The `*.domain` suffixes of both origins (without `*.`), no repeats.
    pub fn suffixes(&self) -> Vec<String> {
        self.names(|e| match e {
            GardenEntry::Suffix(s) => Some(s),
            _ => None,
        })
    }

    fn names(&self, pick: impl Fn(&GardenEntry) -> Option<&String>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in self.all().filter_map(pick) {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str) -> GardenEntry {
        GardenEntry::Host(h.into())
    }

    fn net(n: &str) -> GardenEntry {
        GardenEntry::Net(n.parse().unwrap())
    }

    #[test]
    fn operator_entries_are_added_removed_and_marked() {
        let mut b = GardenBook::new(vec![host("portal.example"), net("198.51.100.0/24")]);
        b.add(host("extra.example")).unwrap();
        b.add(net("198.51.100.7/32")).unwrap();
        b.add(GardenEntry::Suffix("cdn.example".into())).unwrap();
        assert_eq!(
            b.add(host("portal.example")),
            Err(GardenEditError::AlreadyThere(
                host("portal.example"),
                Origin::Configured
            ))
        );
        assert_eq!(
            b.add(host("extra.example")),
            Err(GardenEditError::AlreadyThere(
                host("extra.example"),
                Origin::Operator
            ))
        );
        assert_eq!(b.hosts(), vec!["portal.example", "extra.example"]);
        assert_eq!(b.suffixes(), vec!["cdn.example"]);
        assert_eq!(b.nets().len(), 2);
        let entries = b.entries();
        assert_eq!(entries[0], (host("portal.example"), Origin::Configured));
        assert_eq!(entries[2], (host("extra.example"), Origin::Operator));
        // A configured entry cannot be removed live; an unknown one is named.
        let e = b.remove(&host("portal.example")).unwrap_err();
        assert!(e.to_string().contains("portal.walled_garden"), "{e}");
        let e = b.remove(&host("nowhere.example")).unwrap_err();
        assert_eq!(e.to_string(), "nowhere.example is not in the walled garden");
        b.remove(&host("extra.example")).unwrap();
        assert_eq!(b.hosts(), vec!["portal.example"]);
        assert_eq!(b.origin(&host("extra.example")), None);
    }

    #[test]
    fn replacing_the_configured_entries_keeps_the_operators() {
        let mut b = GardenBook::new(vec![host("a.example"), host("b.example")]);
        b.add(host("op.example")).unwrap();
        b.set_configured(vec![
            host("b.example"),
            host("c.example"),
            host("c.example"),
        ]);
        assert_eq!(b.hosts(), vec!["b.example", "c.example", "op.example"]);
        assert_eq!(b.origin(&host("a.example")), None);
        assert_eq!(b.origin(&host("op.example")), Some(Origin::Operator));
        // Configured later as well: listed once, as configured, and still
        // open after the config drops it again.
        b.set_configured(vec![host("op.example")]);
        assert_eq!(b.entries(), vec![(host("op.example"), Origin::Configured)]);
        b.set_configured(vec![]);
        assert_eq!(b.entries(), vec![(host("op.example"), Origin::Operator)]);
    }

    #[test]
    fn entries_print_in_config_syntax() {
        assert_eq!(net("198.51.100.7/32").to_string(), "198.51.100.7");
        assert_eq!(net("198.51.100.0/24").to_string(), "198.51.100.0/24");
        assert_eq!(
            GardenEntry::Suffix("x.example".into()).to_string(),
            "*.x.example"
        );
    }
}
