//! Runs a [`Plan`]: observe under the container's lock, plan, and carry the steps out through
//! the liblxc wrapper. A container created by a run that then fails before it ever booted is
//! destroyed again, so a failed create leaves nothing half-made.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::archive::ArchiveInfo;
use crate::config_file::{self, ConfigFile};
use crate::error::Error;
use crate::facts::{CommandResult, Diff, Facts, Outcome};
use crate::liblxc::sys::DeferSignals;
use crate::liblxc::{self, BdevSpecs, Container, CreateArgs, CreateMarker};
use crate::lock::{ContainerLock, Mark};
use crate::plan::{plan, Current, Observed, Plan, Step};
use crate::spec::ContainerSpec;
use crate::store::{Store, StoreOption};

/// How to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Plan only; change nothing on the host.
    pub check: bool,
    /// Report state and config before and after.
    pub diff: bool,
}

/// Where liblxc's templates live.
pub const TEMPLATE_DIR: &str = "/usr/share/lxc/templates";

/// Default size of loop and lvm filesystems, as the module's `fs_size` default.
pub const DEFAULT_FS_SIZE: u64 = 5 << 30;

fn open(name: &str, lxc_path: &Path) -> Result<Container, Error> {
    Ok(Container::new(name, lxc_path)?)
}

/// Reads what is on the host for container `name`.
pub fn observe(name: &str, lxc_path: &Path) -> Result<Observed, Error> {
    let c = open(name, lxc_path)?;
    observe_container(&c)
}

/// Reads what is on the host for a spec: its container and the clone it names.
pub fn observe_spec(spec: &ContainerSpec) -> Result<Observed, Error> {
    observe_with(&open(&spec.name, &spec.lxc_path)?, spec)
}

/// [`observe_spec`] through an open handle on the spec's container.
fn observe_with(c: &Container, spec: &ContainerSpec) -> Result<Observed, Error> {
    let mut observed = observe_container(c)?;
    if let Some(clone) = &spec.clone {
        observed.clone = Some(Box::new(observe(&clone.name, &spec.lxc_path)?));
    }
    Ok(observed)
}

fn observe_container(c: &Container) -> Result<Observed, Error> {
    match c.create_marker() {
        CreateMarker::None => {}
        CreateMarker::Ongoing => {
            return Ok(Observed {
                being_created: true,
                ..Observed::absent()
            })
        }
        CreateMarker::Interrupted => return Ok(unfinished(c)),
    }
    // A clone a killed run was making under this name.
    if Mark::Unfinished.get(c.lxc_path(), c.name()).is_some() {
        return Ok(unfinished(c));
    }
    if !c.is_defined() {
        return Ok(Observed {
            occupied: c.lxc_path().join(c.name()).exists(),
            ..Observed::absent()
        });
    }
    let path = c.config_file_name();
    let config = ConfigFile::read(&path).map_err(|source| Error::Io {
        container: c.name().to_string(),
        what: "read config",
        path,
        source,
    })?;
    // From the file, not liblxc: liblxc reports lxc.rootfs.path without its store prefix.
    let store = config
        .get("lxc.rootfs.path")
        .last()
        .map(|r| Store::from_rootfs(r));
    let state = Current::from_lxc(c.state());
    Ok(Observed {
        state,
        config,
        store,
        dependents: dependents(c),
        recover: recover_to(c, state),
        ..Observed::absent()
    })
}

/// A container that a killed create or clone left half-made; while what that run started (a
/// template, an rsync) still works in its directory, one being made by another process.
fn unfinished(c: &Container) -> Observed {
    let worked_on = liblxc::sys::is_worked_on(&c.lxc_path().join(c.name()));
    Observed {
        unfinished: !worked_on,
        being_created: worked_on,
        ..Observed::absent()
    }
}

/// The state a killed run left `c` to return to, when it left something to undo: a clone's
/// quiesce mark (the state it held), or an archive's leftovers (running again, if it froze it).
fn recover_to(c: &Container, state: Current) -> Option<Current> {
    let quiesced = Mark::Quiesced.get(c.lxc_path(), c.name());
    if let Some(prior) = quiesced.as_deref().and_then(Current::parse) {
        return Some(prior);
    }
    let froze = crate::archive::view::left_behind(c)?;
    Some(if froze && state == Current::Frozen {
        Current::Running
    } else {
        state
    })
}

fn facts_of(c: &Container) -> Facts {
    let state = if c.is_defined() {
        Current::from_lxc(c.state())
    } else {
        Current::Absent
    };
    facts_in(c, state)
}

/// The facts of `c`, known to be in `state` (observed a moment ago by this run).
fn facts_in(c: &Container, state: Current) -> Facts {
    let running = matches!(state, Current::Running | Current::Frozen);
    let pid = if running { c.init_pid() } else { None };
    let network = pid.map(|pid| c.network(pid)).unwrap_or_default();
    Facts {
        name: c.name().to_string(),
        state,
        init_pid: pid.map_or(-1, i64::from),
        interfaces: network.interfaces,
        ips: network.ips,
    }
}

/// Whether container `name` exists in `lxc_path` (a stat, nothing more).
pub fn exists(name: &str, lxc_path: &Path) -> Result<bool, Error> {
    Ok(open(name, lxc_path)?.is_defined())
}

/// The facts of container `name` in `lxc_path` (state `absent` when it does not exist).
pub fn facts(name: &str, lxc_path: &Path) -> Result<Facts, Error> {
    Ok(facts_of(&open(name, lxc_path)?))
}

/// The facts of every container defined in `lxc_path`, sorted by name.
pub fn list(lxc_path: &Path) -> Result<Vec<Facts>, Error> {
    liblxc::list_defined(lxc_path)?
        .iter()
        .map(|name| facts(name, lxc_path))
        .collect()
}

/// Makes the container be what `spec` declares and reports what changed.
///
/// In check mode only the plan is made. Otherwise a no-op is found without taking the lock;
/// anything else is re-observed and re-planned under the locks of the container and of the
/// clone it names, then executed.
pub fn ensure(spec: &ContainerSpec, options: Options) -> Result<Outcome, Error> {
    let log_mark = liblxc::log_mark();
    // Taken before the open, so that a change in between makes the stamp stale, not the handle.
    let mut stamp = config_stamp(&spec.lxc_path, &spec.name);
    let mut c = open(&spec.name, &spec.lxc_path)?;
    let first = match plan(spec, &observe_with(&c, spec)?) {
        Ok(first) => first,
        Err(e) => {
            // A directory without a config is also what a container looks like while another
            // run creates or destroys it under its lock: wait for such a run, then look again.
            if !wait_for_other_runs(spec)? {
                return Err(e.into());
            }
            stamp = config_stamp(&spec.lxc_path, &spec.name);
            c = open(&spec.name, &spec.lxc_path)?;
            plan(spec, &observe_with(&c, spec)?)?
        }
    };
    preflight_all(spec, &first)?;
    if options.check || !first.changed() {
        // Nothing changed since the observation: its state is the current one.
        let facts = facts_in(&c, first.before.state);
        return Ok(outcome(spec, first, Done::default(), options, facts));
    }
    let locks = ContainerLock::acquire_all(&spec.lxc_path, &locked_names(spec))
        .map_err(|source| lock_error(spec, source))?;
    // liblxc keeps the config it read at open, and another run may have changed it while this
    // one waited for the lock: then a fresh handle (opening one parses the whole config).
    if config_stamp(&spec.lxc_path, &spec.name) != stamp {
        c = open(&spec.name, &spec.lxc_path)?;
    }
    let plan = plan(spec, &observe_with(&c, spec)?)?;
    // A signal from here on ends the run between two steps, not inside one; dropping this
    // on return ends the process by the signal.
    let signals = DeferSignals::new();
    let mut done = Done::default();
    let mut result = run_steps(spec, &plan.steps, &c, &mut done, &signals);
    let clone_steps = plan.clone_plan.as_ref().filter(|sub| !sub.steps.is_empty());
    if let (Ok(_), Some(sub), Some(clone)) = (&result, clone_steps, &spec.clone) {
        let on_clone = ContainerSpec {
            name: clone.name.clone(),
            clone: None,
            ..spec.clone()
        };
        let clone_container = open(&clone.name, &spec.lxc_path)?;
        result = run_steps(&on_clone, &sub.steps, &clone_container, &mut done, &signals);
    }
    if spec.container_log.is_some() {
        write_container_log(&spec.name, &plan, &result, log_mark);
    }
    // A lock file goes with its container: destroyed, or never made (a create or a clone
    // that failed and was undone); one left behind would only be an empty file.
    for lock in locks {
        if !spec.lxc_path.join(lock.name()).exists() {
            let _ = lock.remove();
        }
    }
    result?;
    let facts = facts_of(&c);
    if let Some(result) = done.command.as_ref().filter(|r| r.rc != 0) {
        return Err(Error::Command {
            container: spec.name.clone(),
            result: result.clone(),
        });
    }
    Ok(outcome(spec, plan, done, options, facts))
}

/// What identifies one version of a container's config file: inode, size and modification
/// time (`None` when there is none). The atomic writes lxcform makes always change the inode.
fn config_stamp(lxc_path: &Path, name: &str) -> Option<(u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(lxc_path.join(name).join("config")).ok()?;
    Some((m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// The containers a run on `spec` locks: its own and the clone it names.
fn locked_names(spec: &ContainerSpec) -> Vec<&str> {
    let mut names = vec![spec.name.as_str()];
    names.extend(spec.clone.as_ref().map(|c| c.name.as_str()));
    names
}

fn lock_error(spec: &ContainerSpec, source: std::io::Error) -> Error {
    // A signal a caller defers stops the wait for another run's lock; nothing changed yet.
    if let (std::io::ErrorKind::Interrupted, Some(signal)) =
        (source.kind(), liblxc::sys::pending_signal())
    {
        return Error::Stopped {
            container: spec.name.clone(),
            signal,
            before: "taking its lock".into(),
            command: None,
        };
    }
    Error::Io {
        container: spec.name.clone(),
        what: "lock",
        path: spec.lxc_path.join(crate::lock::LOCK_DIR),
        source,
    }
}

/// Waits for runs that hold the lock of the spec's container or clone; returns whether any
/// lock file was there to wait on.
fn wait_for_other_runs(spec: &ContainerSpec) -> Result<bool, Error> {
    let mut any = false;
    for name in locked_names(spec) {
        any |= ContainerLock::wait_for_holder(&spec.lxc_path, name)
            .map_err(|source| lock_error(spec, source))?;
    }
    Ok(any)
}

fn outcome(
    spec: &ContainerSpec,
    plan: Plan,
    done: Done,
    options: Options,
    facts: Facts,
) -> Outcome {
    let mut warnings = spec.warnings.clone();
    warnings.extend(plan.warnings.iter().cloned());
    let mut steps = plan.steps.clone();
    if let Some(sub) = &plan.clone_plan {
        warnings.extend(sub.warnings.iter().cloned());
        steps.extend(sub.steps.iter().cloned());
    }
    Outcome {
        changed: plan.changed(),
        cloned: spec.clone.as_ref().map(|_| plan.clones()),
        diff: options.diff.then_some(Diff {
            before: plan.before,
            after: plan.after,
        }),
        steps,
        facts,
        command: done.command,
        archive: done.archive,
        warnings,
    }
}

/// Destroys a container this run created, unless disarmed once it is complete.
struct CreatedGuard<'a> {
    container: Option<&'a Container>,
}

impl CreatedGuard<'_> {
    fn disarm(&mut self) {
        self.container = None;
    }
}

impl Drop for CreatedGuard<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.container.take() {
            let _ = crate::clone::remove_half_made(c);
        }
    }
}

/// Brings a container the steps stopped for a moment (to write its config) back to the state
/// it had, when a failure or a signal ends the steps before they start it again: a running
/// container is never left stopped by a half-done change.
struct BackOnFailure<'a> {
    container: Option<&'a Container>,
    prior: Current,
}

impl Drop for BackOnFailure<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.container.take() {
            let _ = crate::clone::return_to(c, self.prior);
        }
    }
}

/// Runs the steps; returns the command's result, if one ran. A failed command does not stop
/// the remaining state transitions (the container still reaches its declared state); the
/// caller reports the failure. A signal stops the run before the next step (a container
/// this run created and has not started is then removed, and one it stopped to change its
/// config is brought back to its state, as after a failure).
fn run_steps(
    spec: &ContainerSpec,
    steps: &[Step],
    c: &Container,
    done: &mut Done,
    signals: &DeferSignals,
) -> Result<(), Error> {
    let mut guard = CreatedGuard { container: None };
    let mut back = BackOnFailure {
        container: None,
        prior: Current::Stopped,
    };
    for (i, step) in steps.iter().enumerate() {
        if let Some(signal) = signals.pending() {
            return Err(Error::Stopped {
                container: spec.name.clone(),
                signal,
                before: step.to_string(),
                command: done.command.take(),
            });
        }
        match step {
            Step::Create => {
                create(spec, c)?;
                guard.container = Some(c);
            }
            Step::WriteConfig(_) => {
                let path = c.config_file_name();
                let io = |what, source| Error::Io {
                    container: spec.name.clone(),
                    what,
                    path: path.clone(),
                    source,
                };
                // Edits are computed again from the file as it is now: after a create it holds the
                // template's lines, which the plan could not see.
                let mut file = ConfigFile::read(&path).map_err(|e| io("read config", e))?;
                let edits = file.edits_for(&spec.container_config);
                file.apply(&edits);
                config_file::write_atomic(&path, file.render().as_bytes())
                    .map_err(|e| io("write config", e))?;
                c.reload_config()?;
            }
            Step::Start => {
                guard.disarm();
                c.start()?;
                back.container = None;
            }
            Step::Stop => {
                // A stop that a later step undoes (to write the config) is undone on failure.
                if steps[i..].contains(&Step::Start) {
                    back.prior = Current::from_lxc(c.state());
                    back.container = Some(c);
                }
                c.stop()?;
            }
            Step::Freeze => c.freeze()?,
            Step::Unfreeze => c.unfreeze()?,
            Step::Destroy => c.destroy()?,
            Step::Recover(to) => {
                if crate::archive::view::left_behind(c).is_some() {
                    crate::archive::remove_left_behind(c)?;
                }
                crate::clone::return_to(c, *to)?;
                Mark::Quiesced
                    .clear(&spec.lxc_path, &spec.name)
                    .map_err(|source| lock_error(spec, source))?;
            }
            Step::RemoveUnfinished => {
                Mark::Unfinished
                    .clear(&spec.lxc_path, &spec.name)
                    .map_err(|source| lock_error(spec, source))?;
                crate::clone::remove_half_made(c).map_err(|source| Error::Io {
                    container: spec.name.clone(),
                    what: "remove an interrupted create",
                    path: spec.lxc_path.join(&spec.name),
                    source,
                })?;
                c.clear_config()?;
            }
            Step::Archive => {
                if let Some(archive) = &spec.archive {
                    done.archive = Some(crate::archive::write(c, archive)?);
                }
            }
            Step::Clone {
                name,
                method,
                quiesce,
            } => {
                let fs_size = spec.clone.as_ref().and_then(|cs| cs.fs_size);
                crate::clone::make(c, name, method, *quiesce, fs_size)?;
            }
            Step::RunCommand => {
                let script = spec.container_command.as_deref().unwrap_or_default();
                let r = c.attach_run("/bin/sh", &["-c", script])?;
                done.command = Some(CommandResult {
                    rc: r.rc,
                    stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
                });
            }
        }
    }
    guard.disarm();
    Ok(())
}

/// The snapshot clones whose rootfs lies on this container's, as liblxc lists them in
/// `lxc_snapshots` (each as two lines: its lxc_path, then its name).
fn dependents(c: &Container) -> Vec<String> {
    fs::read_to_string(c.lxc_path().join(c.name()).join("lxc_snapshots"))
        .map(|text| {
            text.lines()
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// What the steps produced.
#[derive(Debug, Default)]
struct Done {
    /// The command's result, when one ran.
    command: Option<CommandResult>,
    /// The archive written, when one was.
    archive: Option<ArchiveInfo>,
}

/// Where the template is: a path as given, or a name in liblxc's template directory.
fn template_path(spec: &ContainerSpec) -> PathBuf {
    if spec.template.contains('/') {
        PathBuf::from(&spec.template)
    } else {
        Path::new(TEMPLATE_DIR).join(format!("lxc-{}", spec.template))
    }
}

/// [`preflight`] of a plan and of the plan it makes for a clone.
pub(crate) fn preflight_all(spec: &ContainerSpec, plan: &Plan) -> Result<(), Error> {
    preflight(spec, plan)?;
    match &plan.clone_plan {
        Some(sub) => preflight(spec, sub),
        None => Ok(()),
    }
}

/// Checks what the plan's steps need from the host — the template, the config file, the
/// stores — before anything (even a lock file) is written.
fn preflight(spec: &ContainerSpec, plan: &Plan) -> Result<(), Error> {
    let store_check = |name: &str, store: Store| {
        (store.info().host_check)(&spec.lxc_path).map_err(|reason| Error::Store {
            container: name.to_string(),
            store,
            reason,
        })
    };
    for step in &plan.steps {
        match step {
            Step::Create => {
                let looked = template_path(spec);
                let Some(mode) = fs::metadata(&looked)
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.permissions().mode())
                else {
                    return Err(Error::Template {
                        container: spec.name.clone(),
                        template: spec.template.clone(),
                        looked,
                    });
                };
                // liblxc runs it, so it must be executable (liblxc checks X_OK too).
                if mode & 0o111 == 0 {
                    return Err(Error::Io {
                        container: spec.name.clone(),
                        what: "run the template",
                        path: looked,
                        source: std::io::Error::new(
                            std::io::ErrorKind::PermissionDenied,
                            "it is not executable",
                        ),
                    });
                }
                if let Some(config) = &spec.config {
                    if !config.is_file() {
                        return Err(Error::Io {
                            container: spec.name.clone(),
                            what: "read config file",
                            path: config.clone(),
                            source: std::io::ErrorKind::NotFound.into(),
                        });
                    }
                }
                store_check(&spec.name, spec.storage.store)?;
            }
            Step::Clone { name, method, .. } => store_check(name, method.store)?,
            _ => {}
        }
    }
    Ok(())
}

/// Creates the container (after [`preflight`] checked the host).
fn create(spec: &ContainerSpec, c: &Container) -> Result<(), Error> {
    let template_path = template_path(spec);
    let storage = &spec.storage;
    let info = storage.store.info();
    if let Some(config) = &spec.config {
        c.load_config_file(config)?;
    }
    let applies = |o: StoreOption| info.options.contains(&o);
    let specs = BdevSpecs {
        fstype: applies(StoreOption::FsType)
            .then(|| storage.fs_type.clone().unwrap_or_else(|| "ext4".into())),
        fssize: if applies(StoreOption::FsSize) {
            storage.fs_size.unwrap_or(DEFAULT_FS_SIZE)
        } else {
            0
        },
        dir: storage.directory.clone(),
        zfs_root: storage.zfs_root.clone(),
        lvm_vg: applies(StoreOption::VgName)
            .then(|| storage.vg_name.clone().unwrap_or_else(|| "lxc".into())),
        lvm_lv: applies(StoreOption::LvName)
            .then(|| storage.lv_name.clone().unwrap_or_else(|| spec.name.clone())),
        lvm_thinpool: storage.thinpool.clone(),
    };
    let dir = spec.lxc_path.join(&spec.name);
    let existed = dir.exists();
    let result = c.create(&CreateArgs {
        template: template_path.to_str().unwrap_or(&spec.template),
        bdevtype: info.lxc_name,
        specs,
        template_args: &spec.template_options,
    });
    if result.is_err() && !existed && !c.is_defined() && dir.exists() {
        let _ = fs::remove_dir_all(&dir);
    }
    Ok(result?)
}

/// Appends what this run did — its steps, its outcome and liblxc's log lines — to
/// /var/log/lxc/lxc-NAME.log, as the module's `container_log` does (best effort: a log that
/// cannot be written fails nothing).
fn write_container_log(name: &str, plan: &Plan, result: &Result<(), Error>, mark: liblxc::LogMark) {
    let dir = Path::new("/var/log/lxc");
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("lxc-{name}.log")))
    else {
        return;
    };
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let steps: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
    let status = match result {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("failed: {e}"),
    };
    let _ = writeln!(f, "lxcform {when} {name}: {}: {status}", steps.join(", "));
    for line in mark.lines() {
        let _ = writeln!(f, "{line}");
    }
}
