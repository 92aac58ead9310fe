//! Model-based test: long random sequences of operations (create, write, truncate, rename,
//! delete, mkdir, rmdir, seal, commit, discard, per-file commit/discard, remount) run against
//! the volume and an in-memory model; after every step all contents, sizes and listings must
//! equal the model, and every remount must check clean.

mod common;
use common::*;
use fs_core::{Error, FileAttributes, FileId, FileKind, MemDevice, Volume};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};

const NAMES: [&str; 8] = [
    "a",
    "A",
    "b",
    "B",
    "c",
    "dir",
    "Dir",
    "long name with spaces and ünïcödé",
];

#[derive(Debug, Clone)]
enum Op {
    Create {
        dir: usize,
        name: usize,
        is_dir: bool,
    },
    Write {
        file: usize,
        offset: u32,
        len: u16,
        byte: u8,
    },
    Truncate {
        file: usize,
        size: u32,
    },
    Rename {
        src: usize,
        dir: usize,
        name: usize,
        replace: bool,
    },
    Delete {
        node: usize,
    },
    Seal,
    Commit,
    Discard,
    CommitFile {
        file: usize,
    },
    DiscardFile {
        file: usize,
    },
    Remount,
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<usize>(), 0..NAMES.len(), prop::bool::weighted(0.3)).prop_map(|(dir, name, is_dir)| Op::Create { dir, name, is_dir }),
        8 => (any::<usize>(), 0..40_000u32, 1..6000u16, any::<u8>()).prop_map(|(file, offset, len, byte)| Op::Write { file, offset, len, byte }),
        2 => (any::<usize>(), 0..30_000u32).prop_map(|(file, size)| Op::Truncate { file, size }),
        3 => (any::<usize>(), any::<usize>(), 0..NAMES.len(), any::<bool>()).prop_map(|(src, dir, name, replace)| Op::Rename { src, dir, name, replace }),
        3 => any::<usize>().prop_map(|node| Op::Delete { node }),
        1 => Just(Op::Seal),
        1 => Just(Op::Commit),
        1 => Just(Op::Discard),
        1 => any::<usize>().prop_map(|file| Op::CommitFile { file }),
        1 => any::<usize>().prop_map(|file| Op::DiscardFile { file }),
        1 => Just(Op::Remount),
        1 => Just(Op::Sync),
    ]
}

#[derive(Debug, Clone)]
struct Node {
    id: u64,
    display: String,
    dir: bool,
    content: Vec<u8>,
}

type Path = Vec<String>;

/// A tree: up-cased path -> node. The root is the empty path.
#[derive(Debug, Clone, Default)]
struct Tree(BTreeMap<Path, Node>);

impl Tree {
    fn children(&self, dir: &Path) -> Vec<(&Path, &Node)> {
        self.0
            .iter()
            .filter(|(p, _)| p.len() == dir.len() + 1 && p.starts_with(dir))
            .collect()
    }
    fn display(&self, path: &Path) -> String {
        let mut out = String::new();
        for i in 1..=path.len() {
            out.push('/');
            out.push_str(&self.0[&path[..i].to_vec()].display);
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
    fn find_id(&self, id: u64) -> Option<Path> {
        self.0
            .iter()
            .find(|(_, n)| n.id == id)
            .map(|(p, _)| p.clone())
    }
}

fn key(s: &str) -> String {
    s.to_uppercase()
}

struct Harness {
    vol: Option<Volume<MemDevice>>,
    live: Tree,
    base: Option<Tree>,
    ids: HashMap<u64, FileId>,
    next_id: u64,
}

impl Harness {
    fn new(cluster_size: u32) -> Harness {
        let mut vol = mount(formatted(24 << 20, cluster_size));
        let root = vol.root().unwrap();
        let mut live = Tree::default();
        live.0.insert(
            vec![],
            Node {
                id: 0,
                display: String::new(),
                dir: true,
                content: vec![],
            },
        );
        Harness {
            vol: Some(vol),
            live,
            base: None,
            ids: HashMap::from([(0, root)]),
            next_id: 1,
        }
    }

    fn vol(&mut self) -> &mut Volume<MemDevice> {
        self.vol.as_mut().unwrap()
    }

    fn pick(&self, n: usize, want: impl Fn(&Node) -> bool) -> Option<Path> {
        let all: Vec<&Path> = self
            .live
            .0
            .iter()
            .filter(|(_, node)| want(node))
            .map(|(p, _)| p)
            .collect();
        (!all.is_empty()).then(|| all[n % all.len()].clone())
    }

    fn fid(&self, path: &Path) -> FileId {
        self.ids[&self.live.0[path].id]
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Create { dir, name, is_dir } => {
                let Some(d) = self.pick(dir, |n| n.dir) else {
                    return Ok(());
                };
                let mut path = d.clone();
                path.push(key(NAMES[name]));
                let did = self.fid(&d);
                let kind = if is_dir {
                    FileKind::Directory
                } else {
                    FileKind::File
                };
                let got =
                    self.vol()
                        .create(did, &name_of(NAMES[name]), kind, FileAttributes::empty());
                if self.live.0.contains_key(&path) {
                    prop_assert_eq!(got, Err(Error::AlreadyExists));
                } else {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.ids.insert(id, got.unwrap());
                    self.live.0.insert(
                        path,
                        Node {
                            id,
                            display: NAMES[name].into(),
                            dir: is_dir,
                            content: vec![],
                        },
                    );
                }
            }
            Op::Write {
                file,
                offset,
                len,
                byte,
            } => {
                let Some(p) = self.pick(file, |n| !n.dir) else {
                    return Ok(());
                };
                let id = self.fid(&p);
                let data = vec![byte; usize::from(len)];
                self.vol().write(id, offset.into(), &data).unwrap();
                let c = &mut self.live.0.get_mut(&p).unwrap().content;
                let end = offset as usize + data.len();
                if c.len() < end {
                    c.resize(end, 0);
                }
                c[offset as usize..end].copy_from_slice(&data);
            }
            Op::Truncate { file, size } => {
                let Some(p) = self.pick(file, |n| !n.dir) else {
                    return Ok(());
                };
                let id = self.fid(&p);
                self.vol().set_file_size(id, size.into()).unwrap();
                self.live
                    .0
                    .get_mut(&p)
                    .unwrap()
                    .content
                    .resize(size as usize, 0);
            }
            Op::Rename {
                src,
                dir,
                name,
                replace,
            } => self.rename(src, dir, name, replace)?,
            Op::Delete { node } => {
                let Some(p) = self.pick(node, |n| n.id != 0) else {
                    return Ok(());
                };
                let parent = p[..p.len() - 1].to_vec();
                let (pid, display) = (self.fid(&parent), self.live.0[&p].display.clone());
                let got = self.vol().delete(pid, &name_of(&display));
                if self.live.0[&p].dir && !self.live.children(&p).is_empty() {
                    prop_assert_eq!(got, Err(Error::DirectoryNotEmpty));
                } else {
                    prop_assert_eq!(got, Ok(()));
                    self.live.0.remove(&p);
                }
            }
            Op::Seal => {
                let got = self.vol().seal();
                if self.base.is_some() {
                    prop_assert_eq!(got, Err(Error::AlreadySealed));
                } else {
                    prop_assert_eq!(got, Ok(()));
                    self.base = Some(self.live.clone());
                }
            }
            Op::Commit => {
                let got = self.vol().commit();
                match self.base {
                    None => prop_assert_eq!(got, Err(Error::NotSealed)),
                    Some(_) => {
                        prop_assert_eq!(got, Ok(()));
                        self.base = Some(self.live.clone());
                    }
                }
            }
            Op::Discard => {
                let got = self.vol().discard();
                match &self.base {
                    None => prop_assert_eq!(got, Err(Error::NotSealed)),
                    Some(base) => {
                        prop_assert_eq!(got, Ok(()));
                        self.live = base.clone();
                    }
                }
            }
            Op::CommitFile { file } | Op::DiscardFile { file } => {
                let commit = matches!(op, Op::CommitFile { .. });
                let Some(p) = self.pick(file, |n| !n.dir) else {
                    return Ok(());
                };
                let id = self.fid(&p);
                let got = if commit {
                    self.vol().commit_file(id)
                } else {
                    self.vol().discard_file(id)
                };
                let model_id = self.live.0[&p].id;
                match self.base.as_mut() {
                    None => prop_assert_eq!(got, Err(Error::NotSealed)),
                    Some(base) => match base.find_id(model_id) {
                        None => prop_assert_eq!(got, Err(Error::NoBaseVersion)),
                        Some(bp) => {
                            prop_assert_eq!(got, Ok(()));
                            if commit {
                                base.0.get_mut(&bp).unwrap().content =
                                    self.live.0[&p].content.clone();
                            } else {
                                self.live.0.get_mut(&p).unwrap().content =
                                    base.0[&bp].content.clone();
                            }
                        }
                    },
                }
            }
            Op::Remount => {
                let dev = self.vol.take().unwrap().unmount().unwrap();
                self.vol = Some(mount(assert_clean(dev)));
            }
            Op::Sync => self.vol().sync().unwrap(),
        }
        Ok(())
    }

    fn rename(
        &mut self,
        src: usize,
        dir: usize,
        name: usize,
        replace: bool,
    ) -> Result<(), TestCaseError> {
        let Some(s) = self.pick(src, |n| n.id != 0) else {
            return Ok(());
        };
        let Some(d) = self.pick(dir, |n| n.dir) else {
            return Ok(());
        };
        let (sparent, sdisplay) = (s[..s.len() - 1].to_vec(), self.live.0[&s].display.clone());
        let (spid, dpid) = (self.fid(&sparent), self.fid(&d));
        let got = self.vol().rename(
            spid,
            &name_of(&sdisplay),
            dpid,
            &name_of(NAMES[name]),
            replace,
        );
        let src_dir = self.live.0[&s].dir;
        if src_dir && d.starts_with(&s) {
            prop_assert!(matches!(got, Err(Error::InvalidArgument(_))), "{:?}", got);
            return Ok(());
        }
        let mut target = d.clone();
        target.push(key(NAMES[name]));
        if let Some(existing) = self.live.0.get(&target) {
            if existing.id != self.live.0[&s].id {
                let expected = match (replace, src_dir, existing.dir) {
                    (false, _, _) => Some(Error::AlreadyExists),
                    (true, false, true) => Some(Error::IsADirectory),
                    (true, true, false) => Some(Error::NotADirectory),
                    (true, true, true) if !self.live.children(&target).is_empty() => {
                        Some(Error::DirectoryNotEmpty)
                    }
                    _ => None,
                };
                if let Some(e) = expected {
                    prop_assert_eq!(got, Err(e));
                    return Ok(());
                }
                self.live.0.remove(&target);
            }
        }
        prop_assert_eq!(got, Ok(()));
        let moved: Vec<Path> = self
            .live
            .0
            .keys()
            .filter(|p| p.starts_with(&s))
            .cloned()
            .collect();
        let mut nodes = Vec::new();
        for p in moved {
            let node = self.live.0.remove(&p).unwrap();
            let mut np = target.clone();
            np.extend_from_slice(&p[s.len()..]);
            nodes.push((np, node));
        }
        for (np, mut node) in nodes {
            if np == target {
                node.display = NAMES[name].into();
            }
            self.live.0.insert(np, node);
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        let paths: Vec<Path> = self.live.0.keys().cloned().collect();
        for p in paths {
            let node = self.live.0[&p].clone();
            let shown = self.live.display(&p);
            let id = self.vol().resolve(&shown);
            prop_assert_eq!(id.clone(), Ok(self.ids[&node.id]), "resolve {}", shown);
            let id = id.unwrap();
            if node.dir {
                let listed: Vec<String> = self
                    .vol()
                    .list(id)
                    .unwrap()
                    .into_iter()
                    .map(|e| e.name.to_string())
                    .collect();
                let mut expected: Vec<(String, String)> = self
                    .live
                    .children(&p)
                    .iter()
                    .map(|(cp, n)| (cp.last().unwrap().clone(), n.display.clone()))
                    .collect();
                expected.sort();
                let expected: Vec<String> = expected.into_iter().map(|(_, d)| d).collect();
                prop_assert_eq!(listed, expected, "listing of {}", shown);
            } else {
                prop_assert_eq!(
                    read_all(self.vol(), id),
                    node.content,
                    "content of {}",
                    shown
                );
            }
        }
        Ok(())
    }
}

fn name_of(s: &str) -> fs_core::Name {
    name(s)
}

fn run(cluster_size: u32, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut h = Harness::new(cluster_size);
    for op in &ops {
        h.apply(op)?;
        h.check()?;
    }
    let dev = h.vol.take().unwrap().unmount().unwrap();
    h.vol = Some(mount(assert_clean(dev)));
    h.check()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn model_sequences_match_with_4k_clusters(ops in prop::collection::vec(op(), 1..90)) {
        run(4096, ops)?;
    }

    #[test]
    fn model_sequences_match_with_512_byte_clusters(ops in prop::collection::vec(op(), 1..90)) {
        run(512, ops)?;
    }
}
