//! Named task functions: the [`task!`](crate::task) macro (which
//! [`#[multiproc::remote]`](crate::remote) expands to), [`TaskDef`], task keys and
//! lookups.
//!
//! A cluster pool cannot send a function's address to another machine, so every
//! function a cluster runs is registered by name. `task!(f)` adds one element to a
//! [`linkme`] distributed slice: a constructor `fn() -> TaskDef`. The slice is a linker
//! section, complete before any code runs, so a worker host started from the pre-`main`
//! hook sees every registration (`inventory`'s constructors may not have run yet there).
//!
//! A task's key is the first 8 bytes of SHA-256 over `name ‖ 0 ‖ argument type ‖ 0 ‖
//! result type`, where the name is `type_name` of the function item: its definition
//! path, whatever alias a call site uses. Two builds with the same function and types
//! agree on the key; a changed argument or result type changes it.

use std::any::{type_name, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::identity::EntryRef;
use crate::pool::process::chunk;

/// The registered tasks of this program, one constructor per `task!` entry.
#[doc(hidden)]
#[linkme::distributed_slice]
pub static TASKS: [fn() -> TaskDef];

/// A registered task function: its name, its argument and result types, its key, and
/// the pool entry that runs a chunk of it.
#[derive(Clone, Copy)]
pub struct TaskDef {
    name: &'static str,
    args: &'static str,
    ret: &'static str,
    key: u64,
    entry: fn() -> EntryRef,
    /// A function of several arguments, run with a tuple's fields (`starmap`).
    spread: bool,
}

impl fmt::Debug for TaskDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskDef")
            .field("name", &self.name)
            .field("signature", &self.signature())
            .field("key", &format_args!("{:016x}", self.key))
            .finish()
    }
}

impl TaskDef {
    /// The definition of `f` (used by [`task!`](crate::task); not for direct use).
    #[doc(hidden)]
    pub fn of<F, A, R>(_f: F) -> TaskDef
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        super::keep_hook_linked();
        let (name, args, ret) = names::<F, A, R>();
        TaskDef {
            name,
            args,
            ret,
            key: key(name, args, ret),
            entry: chunk::chunk_entry_ref::<F, A, R>,
            spread: false,
        }
    }

    /// The definition of `f` of any number of arguments (what [`task!`](crate::task)
    /// uses): [`of`](Self::of) for one; for two to six, a task over the tuple of
    /// arguments, named as `f`, which [`Pool::starmap`](crate::pool::Pool::starmap)
    /// runs.
    #[doc(hidden)]
    pub fn new<F: Task<M>, M>(f: F) -> TaskDef {
        f.def()
    }

    /// A task over tuples `Args` that `star` runs with their fields spread out; named
    /// as `F`, whose function `star` calls.
    fn spread<F, Args, R, C>(_star: C) -> TaskDef
    where
        F: 'static,
        C: Fn(Args) -> R + Copy + Send + Sync + 'static,
        Args: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        super::keep_hook_linked();
        let (name, args, ret) = (type_name::<F>(), type_name::<Args>(), type_name::<R>());
        TaskDef {
            name,
            args,
            ret,
            key: key(name, args, ret),
            entry: chunk::chunk_entry_ref::<C, Args, R>,
            spread: true,
        }
    }

    /// The function's path, as `std::any::type_name` gives it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `(argument type) -> result type`, or `(A, B) -> result type` for a function of
    /// several arguments.
    pub fn signature(&self) -> String {
        if self.spread {
            format!("{} -> {}", self.args, self.ret)
        } else {
            format!("({}) -> {}", self.args, self.ret)
        }
    }

    /// The key hosts and clients agree on: the first 8 bytes of SHA-256 over the
    /// name, the argument type and the result type.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// The local pool entry that runs a chunk of this task in this executable.
    pub(crate) fn entry(&self) -> EntryRef {
        (self.entry)()
    }
}

/// A function [`task!`](crate::task) can register: one of one to six arguments
/// (`M` tells the arities apart; a `fn` item has exactly one).
#[doc(hidden)]
pub trait Task<M>: Copy + Send + Sync + 'static {
    /// Its definition.
    fn def(self) -> TaskDef;
}

impl<F, A, R> Task<fn(A) -> R> for F
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    fn def(self) -> TaskDef {
        TaskDef::of(self)
    }
}

macro_rules! spread_task {
    ($($a:ident),+) => {
        impl<F, R, $($a),+> Task<fn($($a),+) -> R> for F
        where
            F: Fn($($a),+) -> R + Copy + Send + Sync + 'static,
            ($($a,)+): Serialize + DeserializeOwned + Send + 'static,
            R: Serialize + DeserializeOwned + Send + 'static,
        {
            #[allow(non_snake_case)]
            fn def(self) -> TaskDef {
                TaskDef::spread::<F, ($($a,)+), R, _>(move |($($a,)+): ($($a,)+)| self($($a),+))
            }
        }
    };
}
spread_task!(A1, A2);
spread_task!(A1, A2, A3);
spread_task!(A1, A2, A3, A4);
spread_task!(A1, A2, A3, A4, A5);
spread_task!(A1, A2, A3, A4, A5, A6);

/// What `starmap` on a cluster submits: a closure calling a named function with a
/// tuple's fields, by its type, and that function's name (a closure has none another
/// build can resolve). A host runs the function's [`TaskDef::spread`] entry.
fn spread_names() -> &'static Mutex<HashMap<TypeId, &'static str>> {
    static NAMES: OnceLock<Mutex<HashMap<TypeId, &'static str>>> = OnceLock::new();
    NAMES.get_or_init(Mutex::default)
}

/// Names the closure `_c`, which calls `F` with a tuple's fields, as `F` for the
/// cluster (what [`Pool::starmap`](crate::pool::Pool::starmap) submits).
pub(crate) fn name_spread<F: 'static, C: 'static>(_c: &C) {
    spread_names()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(TypeId::of::<C>(), type_name::<F>());
}

fn names<F, A, R>() -> (&'static str, &'static str, &'static str) {
    (type_name::<F>(), type_name::<A>(), type_name::<R>())
}

fn key(name: &str, args: &str, ret: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(args.as_bytes());
    h.update([0]);
    h.update(ret.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Every registered task of this program, by key.
pub(crate) struct Registry {
    by_key: HashMap<u64, TaskDef>,
    by_name: HashMap<&'static str, Vec<u64>>,
}

/// The registry, built once from [`TASKS`].
pub(crate) fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let mut by_key = HashMap::new();
        let mut by_name: HashMap<&'static str, Vec<u64>> = HashMap::new();
        for make in TASKS {
            let d = make();
            if by_key.insert(d.key, d).is_none() {
                by_name.entry(d.name).or_default().push(d.key);
            }
        }
        Registry { by_key, by_name }
    })
}

impl Registry {
    pub(crate) fn get(&self, key: u64) -> Option<&TaskDef> {
        self.by_key.get(&key)
    }

    /// The definitions registered under `name` (with any signature).
    pub(crate) fn named(&self, name: &str) -> impl Iterator<Item = &TaskDef> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|k| self.by_key.get(k))
    }

    /// Every key, sorted (what a host advertises).
    pub(crate) fn keys(&self) -> Vec<u64> {
        let mut k: Vec<u64> = self.by_key.keys().copied().collect();
        k.sort_unstable();
        k
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &TaskDef> {
        self.by_key.values()
    }
}

/// Every task registered in this program, sorted by name (what
/// `multiproc worker --list` prints).
pub fn registered() -> Vec<TaskDef> {
    super::keep_hook_linked();
    let mut v: Vec<TaskDef> = registry().all().copied().collect();
    v.sort_by(|a, b| a.name.cmp(b.name).then(a.key.cmp(&b.key)));
    v
}

/// What a client sends for `F`: its key and name, after checking that it can run on
/// a cluster at all.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a closure (it has no
/// name another build can resolve); [`ErrorKind::NotRegistered`](crate::ErrorKind::NotRegistered)
/// if `task!` was not used for `F` with these types.
pub(crate) fn lookup<F: 'static, A, R>() -> crate::Result<(u64, &'static str)> {
    let (mut name, args, ret) = names::<F, A, R>();
    if name.contains("{{closure}}") {
        if let Some(n) = spread_names()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&TypeId::of::<F>())
        {
            name = n;
        }
    }
    if name.contains("{{closure}}") {
        return Err(
            crate::Error::new(crate::ErrorKind::InvalidInput).with_message(format!(
                "a closure ({name}) cannot run on a cluster: only named functions registered with \
             multiproc::task! can"
            )),
        );
    }
    let k = key(name, args, ret);
    if registry().get(k).is_none() {
        let short = name.rsplit("::").next().unwrap_or(name);
        return Err(
            crate::Error::new(crate::ErrorKind::NotRegistered).with_message(format!(
                "`{name}` ({args}) -> {ret} is not registered for the cluster; add \
             `#[multiproc::remote]` to it, or `multiproc::task!({short});` next to it"
            )),
        );
    }
    Ok((k, name))
}

/// Registers functions so that a [cluster pool](crate::pool::cluster) can run them on
/// other machines: `task!(f)`, or several at once, `task!(a, b, c)`.
///
/// The usual form is the attribute [`#[multiproc::remote]`](crate::remote) on the
/// function, which expands to `task!`. Use `task!` for what you cannot annotate: a
/// function of another crate (`task!(other::f)`), an instantiation of a generic
/// function (`task!(f::<u32>)`), or many functions in one line.
///
/// A function of two to six arguments is registered over the tuple of its arguments,
/// for [`Pool::starmap`](crate::pool::Pool::starmap) and
/// [`starmap_async`](crate::pool::Pool::starmap_async) (`task!` only: the attribute
/// takes functions of one argument).
///
/// Write it once per function, in any module of the program (next to the function
/// is best); clients and worker hosts run the same program, so both see the
/// registration. A function that is not registered is refused by the client with
/// [`ErrorKind::NotRegistered`](crate::ErrorKind::NotRegistered) before anything is
/// sent.
///
/// # Examples
///
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// multiproc::task!(square);
///
/// let tasks = multiproc::pool::cluster::registered();
/// assert!(tasks.iter().any(|t| t.name().ends_with("::square")));
/// ```
#[macro_export]
macro_rules! task {
    ($($f:path),+ $(,)?) => {
        $(
            const _: () = {
                #[$crate::pool::cluster::__private::linkme::distributed_slice(
                    $crate::pool::cluster::__private::TASKS
                )]
                #[linkme(crate = $crate::pool::cluster::__private::linkme)]
                // linkme places the element with `#[link_section]`, which the
                // `unsafe_code` lint counts; the section holds only this `fn` pointer.
                #[allow(unsafe_code)]
                static TASK: fn() -> $crate::pool::cluster::TaskDef =
                    || $crate::pool::cluster::TaskDef::new($f);
            };
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    mod one {
        pub(crate) fn square(x: u64) -> u64 {
            x * x
        }
    }
    mod two {
        pub(crate) fn square(x: u64) -> u64 {
            x + x
        }
        pub(crate) fn wide(x: u32) -> u64 {
            u64::from(x)
        }
    }
    crate::task!(one::square, two::square);
    crate::task!(two::wide);

    #[test]
    fn two_modules_two_keys() {
        let k1 = TaskDef::of(one::square).key();
        let k2 = TaskDef::of(two::square).key();
        assert_ne!(k1, k2);
        assert!(registry().get(k1).is_some());
        assert!(registry().get(k2).is_some());
    }

    #[test]
    fn key_is_stable_and_depends_on_the_signature() {
        assert_eq!(TaskDef::of(two::wide).key(), TaskDef::of(two::wide).key());
        assert_eq!(
            key("m::f", "u32", "u64"),
            key("m::f", "u32", "u64"),
            "same inputs, same key"
        );
        assert_ne!(key("m::f", "u32", "u64"), key("m::f", "u64", "u64"));
        assert_ne!(key("m::f", "u32", "u64"), key("m::f", "u32", "u32"));
        // The separator keeps `ab|c` and `a|bc` apart.
        assert_ne!(key("m::f", "ab", "c"), key("m::f", "a", "bc"));
    }

    #[test]
    fn lookup_refuses_closures_and_unregistered() {
        fn not_registered(x: u8) -> u8 {
            x
        }
        let e = lookup_of(not_registered).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotRegistered);
        assert!(e.to_string().contains("task!(not_registered)"), "{e}");
        let e = lookup_of(|x: u8| x).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        let (k, name) = lookup_of(two::wide).unwrap();
        assert_eq!(k, TaskDef::of(two::wide).key());
        assert!(name.ends_with("two::wide"), "{name}");
    }

    fn pair(a: u32, b: u8) -> u64 {
        u64::from(a) << b
    }
    crate::task!(pair);

    #[test]
    fn a_function_of_several_arguments_is_a_task_over_their_tuple() {
        let d = TaskDef::new(pair);
        assert!(d.name().ends_with("tests::pair"), "{}", d.name());
        assert_eq!(d.signature(), "(u32, u8) -> u64");
        assert_eq!(d.key(), key(d.name(), "(u32, u8)", "u64"));
        assert!(registry().get(d.key()).is_some());
        // One argument: what `of` gives.
        assert_eq!(TaskDef::new(two::wide).key(), TaskDef::of(two::wide).key());
        assert_eq!(TaskDef::new(two::wide).signature(), "(u32) -> u64");
        // The closure `starmap` submits resolves to the function once named.
        let star = move |args: (u32, u8)| crate::pool::StarFn::call(&pair, args);
        assert_eq!(
            lookup_of(star).unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
        name_spread::<fn(u32, u8) -> u64, _>(&star);
        assert!(
            lookup_of(star).is_err(),
            "named as a fn pointer type: not registered"
        );
        let star2 = move |args: (u32, u8)| crate::pool::StarFn::call(&pair, args);
        name_spread_of(pair, &star2);
        assert_eq!(lookup_of(star2).unwrap(), (d.key(), d.name()));
    }

    fn name_spread_of<F: 'static, C: 'static>(_: F, c: &C) {
        name_spread::<F, C>(c);
    }

    fn lookup_of<F, A, R>(_: F) -> crate::Result<(u64, &'static str)>
    where
        F: Fn(A) -> R + 'static,
    {
        lookup::<F, A, R>()
    }
}
