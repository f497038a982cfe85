//! Tiny Squeak-shaped images built without an image file, for bytecode-level tests and
//! examples: the kernel classes the interpreter names, a special objects array, and methods
//! given as bytecodes.
//!
//! ```
//! use cowheap_heap::Value;
//! use cowheap_vm::synth::{Lit, SynthImage};
//! use cowheap_vm::{FlatHeap, Vm};
//!
//! let mut img = SynthImage::new(false);
//! // SmallInteger>>plus2  ^self + 2
//! img.method("SmallInteger", "plus2", 0, 0, &[], &[112, 119, 176, 124], 0);
//! let (base, symbols) = img.freeze().unwrap();
//! let mut flat = FlatHeap::from_base(&base);
//! let mut vm = Vm::new(&flat).unwrap();
//! let r = vm.send_named(&mut flat, &symbols, Value::int(40), "plus2", &[], 100).unwrap();
//! assert_eq!(r.as_int(), Some(42));
//! ```

use crate::Symbols;
use crate::image::{ClassFormat, MethodHeader, special};
use cowheap_heap::{BaseHeap, Builder, Format, Result, Value, Word};
use std::collections::HashMap;

/// A literal of a synthetic method.
#[derive(Clone, Debug)]
pub enum Lit {
    /// A SmallInteger.
    Int(i64),
    /// A Symbol.
    Sym(String),
    /// A global variable: an association `name -> value`, shared by every method naming it.
    Global(String, i64),
    /// The binding of a class (`name -> class`): the last literal of a method that sends
    /// to super.
    Class(String),
}

/// A synthetic image under construction.
#[derive(Debug)]
pub struct SynthImage {
    b: Builder,
    nil: Word,
    classes: HashMap<String, Word>,
    symbols: HashMap<String, Word>,
    globals: HashMap<String, Word>,
    methods: Vec<(Word, Word, Word)>,
    class_class: Word,
    closures: bool,
    /// The association holding the ProcessorScheduler (special object 3), once made.
    scheduler: Option<Word>,
}

/// Class slots: superclass, methodDict, format, instanceVariables, organization,
/// subclasses, name.
const CLASS_SLOTS: usize = 7;

impl SynthImage {
    /// The kernel: Object, UndefinedObject, True, False, SmallInteger, Float, String,
    /// Symbol, Array, ContextPart, MethodContext, BlockContext, BlockClosure, Point,
    /// LargePositiveInteger, LargeNegativeInteger, Message, CompiledMethod, Character,
    /// MethodDictionary, Association. `closures` makes it a 6505 image (else 6502).
    pub fn new(closures: bool) -> SynthImage {
        let mut b = Builder::new();
        let nil = b.add_nil();
        let class_class = b
            .add(nil, Format::Pointers, vec![nil; CLASS_SLOTS], vec![])
            .expect("a pointer object");
        let mut img = SynthImage {
            b,
            nil,
            classes: HashMap::new(),
            symbols: HashMap::new(),
            globals: HashMap::new(),
            methods: Vec::new(),
            class_class,
            closures,
            scheduler: None,
        };
        for (name, sup, fixed, spec) in [
            ("Object", "", 0, 0),
            ("UndefinedObject", "Object", 0, 0),
            ("Boolean", "Object", 0, 0),
            ("True", "Boolean", 0, 0),
            ("False", "Boolean", 0, 0),
            ("SmallInteger", "Object", 0, 0),
            ("Float", "Object", 0, 6),
            ("String", "Object", 0, 8),
            ("Symbol", "String", 0, 8),
            ("Array", "Object", 0, 2),
            ("ContextPart", "Object", 3, 3),
            ("MethodContext", "ContextPart", 6, 3),
            ("BlockContext", "ContextPart", 6, 3),
            ("BlockClosure", "Object", 3, 3),
            ("Point", "Object", 2, 0),
            ("LargePositiveInteger", "Object", 0, 8),
            ("LargeNegativeInteger", "Object", 0, 8),
            ("Message", "Object", 2, 0),
            ("CompiledMethod", "Object", 0, 12),
            ("Character", "Object", 1, 0),
            ("MethodDictionary", "Object", 2, 3),
            ("Association", "Object", 2, 0),
            ("Class", "Object", CLASS_SLOTS, 0),
        ] {
            img.define_class(name, sup, fixed, spec);
        }
        // Every class is an instance of Class, so class-side sends look up Class, then
        // Object.
        let class = img.class("Class");
        for &c in img.classes.values() {
            img.b.set_class(c, class).expect("an object");
        }
        img.class_class = class;
        img
    }

    /// The class named `name`.
    ///
    /// # Panics
    /// If there is none.
    pub fn class(&self, name: &str) -> Word {
        self.classes[name]
    }

    /// The Symbol `name`, made on first use.
    pub fn symbol(&mut self, name: &str) -> Word {
        if let Some(&s) = self.symbols.get(name) {
            return s;
        }
        // Symbol may not exist yet while the kernel is made: fix the class at freeze.
        let class = self.classes.get("Symbol").copied().unwrap_or(self.nil);
        let s = self
            .b
            .add(class, Format::Bytes, vec![], name.as_bytes().to_vec())
            .expect("a bytes object");
        self.symbols.insert(name.to_owned(), s);
        s
    }

    /// Defines class `name` under `superclass` ("" for none) with `fixed` named fields and
    /// the V3 instance specification `spec`.
    pub fn define_class(&mut self, name: &str, superclass: &str, fixed: usize, spec: u8) -> Word {
        let sup = if superclass.is_empty() {
            self.nil
        } else {
            self.class(superclass)
        };
        let format = Word::int(ClassFormat { spec, fixed }.encode()).expect("a small format");
        let sym = self.symbol(name);
        let nil = self.nil;
        let c = self
            .b
            .add(
                self.class_class,
                Format::Pointers,
                vec![sup, nil, format, nil, nil, nil, sym],
                vec![],
            )
            .expect("a pointer object");
        self.classes.insert(name.to_owned(), c);
        c
    }

    fn literal(&mut self, lit: &Lit) -> Word {
        match lit {
            Lit::Int(i) => Word::int(*i).expect("a small integer"),
            Lit::Sym(s) => self.symbol(s),
            Lit::Global(name, v) => {
                if let Some(&a) = self.globals.get(name) {
                    return a;
                }
                let key = self.symbol(name);
                let assoc = self.class("Association");
                let a = self
                    .b
                    .add(
                        assoc,
                        Format::Pointers,
                        vec![key, Word::int(*v).expect("small")],
                        vec![],
                    )
                    .expect("a pointer object");
                self.globals.insert(name.clone(), a);
                a
            }
            Lit::Class(name) => {
                let key = self.symbol(name);
                let class = self.class(name);
                let assoc = self.class("Association");
                self.b
                    .add(assoc, Format::Pointers, vec![key, class], vec![])
                    .expect("a pointer object")
            }
        }
    }

    /// Adds method `selector` to `class`: `args` arguments, `temps` temporaries (arguments
    /// included), `literals`, `bytecodes`, and primitive `primitive` (0 for none). Answers
    /// the method.
    #[allow(
        clippy::too_many_arguments,
        reason = "a method header has this many parts"
    )]
    pub fn method(
        &mut self,
        class: &str,
        selector: &str,
        args: usize,
        temps: usize,
        literals: &[Lit],
        bytecodes: &[u8],
        primitive: u16,
    ) -> Word {
        let header = MethodHeader {
            literals: literals.len(),
            args,
            temps,
            large: temps > 12,
            primitive,
        };
        let mut slots = vec![Word::int(header.encode()).expect("a small header")];
        for l in literals {
            slots.push(self.literal(l));
        }
        let cm = self.class("CompiledMethod");
        let m = self
            .b
            .add(cm, Format::CompiledMethod, slots, bytecodes.to_vec())
            .expect("a method");
        let c = self.class(class);
        let sel = self.symbol(selector);
        self.methods.push((c, sel, m));
        m
    }

    /// The kernel methods whose primitives the tests lean on: `value`, `value:`,
    /// `blockCopy:`, `perform:`, `at:`, `at:put:`, `size`, `basicNew`, `new:`, `==`, `class`,
    /// `shallowCopy`, `identityHash`, `instVarAt:`, and `+` on SmallInteger with a fallback
    /// that answers `#overflow`.
    pub fn with_kernel_methods(&mut self) -> &mut Self {
        let fallback_nil = [115u8, 124];
        self.method("ContextPart", "blockCopy:", 1, 1, &[], &fallback_nil, 80);
        self.method("BlockContext", "value", 0, 0, &[], &fallback_nil, 81);
        self.method("BlockContext", "value:", 1, 1, &[], &fallback_nil, 81);
        self.method("BlockClosure", "value", 0, 0, &[], &fallback_nil, 201);
        self.method("BlockClosure", "value:", 1, 1, &[], &fallback_nil, 202);
        self.method("Object", "perform:", 1, 1, &[], &fallback_nil, 83);
        self.method("Object", "perform:with:", 2, 2, &[], &fallback_nil, 83);
        self.method("Object", "at:", 1, 1, &[], &fallback_nil, 60);
        self.method("Object", "at:put:", 2, 2, &[], &fallback_nil, 61);
        self.method("Object", "size", 0, 0, &[], &fallback_nil, 62);
        self.method("Object", "==", 1, 1, &[], &fallback_nil, 110);
        self.method("Object", "class", 0, 0, &[], &fallback_nil, 111);
        self.method("Object", "shallowCopy", 0, 0, &[], &fallback_nil, 148);
        self.method("Object", "identityHash", 0, 0, &[], &fallback_nil, 75);
        self.method("Object", "instVarAt:", 1, 1, &[], &fallback_nil, 73);
        self.method("Class", "basicNew", 0, 0, &[], &fallback_nil, 70);
        self.method("Class", "new:", 1, 1, &[], &fallback_nil, 71);
        // SmallInteger>>+ falls back to ^#overflow.
        self.method(
            "SmallInteger",
            "+",
            1,
            1,
            &[Lit::Sym("overflow".into())],
            &[32, 124],
            1,
        );
        self.method("SmallInteger", "asFloat", 0, 0, &[], &fallback_nil, 40);
        self.method("Float", "*", 1, 1, &[], &fallback_nil, 49);
        self.method("Float", "+", 1, 1, &[], &fallback_nil, 41);
        self.method("Float", "truncated", 0, 0, &[], &fallback_nil, 51);
        self
    }

    /// The classes and objects of processes: Link, Process (`nextLink suspendedContext
    /// priority myList`), LinkedList, Semaphore (`excessSignals`), ProcessorScheduler with
    /// eight runnable lists and an active Process of priority 4 (the root `processor`, also
    /// special object 3's association), and the primitive methods `signal` (85), `wait`
    /// (86), `resume` (87), `suspend` (88) and `yield` (167).
    pub fn with_processes(&mut self) -> &mut Self {
        for (name, sup, fixed, spec) in [
            ("Link", "Object", 1, 1),
            ("Process", "Link", 4, 1),
            ("LinkedList", "Object", 2, 1),
            ("Semaphore", "LinkedList", 3, 1),
            ("ProcessorScheduler", "Object", 2, 1),
        ] {
            self.define_class(name, sup, fixed, spec);
        }
        let nil = self.nil;
        let list_class = self.class("LinkedList");
        let lists = (0..8)
            .map(|_| {
                self.b
                    .add(list_class, Format::Pointers, vec![nil; 2], vec![])
                    .expect("a list")
            })
            .collect();
        let array = self.class("Array");
        let lists = self
            .b
            .add(array, Format::Pointers, lists, vec![])
            .expect("an array");
        let process = self.class("Process");
        let priority = Word::int(4).expect("small");
        let active = self
            .b
            .add(
                process,
                Format::Pointers,
                vec![nil, nil, priority, nil],
                vec![],
            )
            .expect("a process");
        let sched_class = self.class("ProcessorScheduler");
        let sched = self
            .b
            .add(sched_class, Format::Pointers, vec![lists, active], vec![])
            .expect("a scheduler");
        let assoc_class = self.class("Association");
        let key = self.symbol("Processor");
        let assoc = self
            .b
            .add(assoc_class, Format::Pointers, vec![key, sched], vec![])
            .expect("an association");
        self.b.add_root("processor", sched).expect("a root");
        self.scheduler = Some(assoc);
        let fallback_nil = [115u8, 124];
        self.method("Semaphore", "signal", 0, 0, &[], &fallback_nil, 85);
        self.method("Semaphore", "wait", 0, 0, &[], &fallback_nil, 86);
        self.method("Process", "resume", 0, 0, &[], &fallback_nil, 87);
        self.method("Process", "suspend", 0, 0, &[], &fallback_nil, 88);
        self.method("ProcessorScheduler", "yield", 0, 0, &[], &fallback_nil, 167);
        self
    }

    /// Builds the method dictionaries, the special objects array and the roots, and freezes
    /// the base. Answers it with its Symbols.
    ///
    /// # Errors
    /// As [`Builder::freeze`].
    pub fn freeze(mut self) -> Result<(BaseHeap, Symbols)> {
        let nil = self.nil;
        // Symbols made before the class Symbol existed.
        let symbol_class = self.class("Symbol");
        for &s in self.symbols.values() {
            self.b.set_class(s, symbol_class)?;
        }
        // true, false, Characters.
        let t = self
            .b
            .add(self.class("True"), Format::Pointers, vec![], vec![])?;
        let f = self
            .b
            .add(self.class("False"), Format::Pointers, vec![], vec![])?;
        let undefined = self.class("UndefinedObject");
        self.b.set_class(nil, undefined)?;
        let character = self.class("Character");
        let chars = (0..256)
            .map(|i| {
                self.b.add(
                    character,
                    Format::Pointers,
                    vec![Word::int(i).expect("small")],
                    vec![],
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let array = self.class("Array");
        let char_table = self.b.add(array, Format::Pointers, chars, vec![])?;
        // Special selectors.
        let specials = [
            ("+", 1),
            ("-", 1),
            ("<", 1),
            (">", 1),
            ("<=", 1),
            (">=", 1),
            ("=", 1),
            ("~=", 1),
            ("*", 1),
            ("/", 1),
            ("\\\\", 1),
            ("@", 1),
            ("bitShift:", 1),
            ("//", 1),
            ("bitAnd:", 1),
            ("bitOr:", 1),
            ("at:", 1),
            ("at:put:", 2),
            ("size", 0),
            ("next", 0),
            ("nextPut:", 1),
            ("atEnd", 0),
            ("==", 1),
            ("class", 0),
            ("blockCopy:", 1),
            ("value", 0),
            ("value:", 1),
            ("do:", 1),
            ("new", 0),
            ("new:", 1),
            ("x", 0),
            ("y", 0),
        ];
        let mut sel_slots = Vec::new();
        for (s, n) in specials {
            sel_slots.push(self.symbol(s));
            sel_slots.push(Word::int(n).expect("small"));
        }
        let sels = self.b.add(array, Format::Pointers, sel_slots, vec![])?;
        // Method dictionaries.
        let mut by_class: HashMap<Word, Vec<(Word, Word)>> = HashMap::new();
        for &(c, s, m) in &self.methods {
            let entries = by_class.entry(c).or_default();
            entries.retain(|&(k, _)| k != s);
            entries.push((s, m));
        }
        let md = self.class("MethodDictionary");
        for (&c, entries) in &by_class {
            let values = self.b.add(
                array,
                Format::Pointers,
                entries.iter().map(|&(_, m)| m).collect(),
                vec![],
            )?;
            let mut slots = vec![Word::int(entries.len() as i64).expect("small"), values];
            slots.extend(entries.iter().map(|&(s, _)| s));
            let dict = self.b.add(md, Format::Pointers, slots, vec![])?;
            self.b.set_slot(c, 1, dict)?;
        }
        let mut sp = vec![nil; 49];
        let dnu = self.symbol("doesNotUnderstand:");
        let cannot = self.symbol("cannotReturn:");
        let must = self.symbol("mustBeBoolean");
        let about = self.symbol("aboutToReturn:through:");
        for (i, w) in [
            (special::FALSE, f),
            (special::TRUE, t),
            (special::CLASS_SMALL_INTEGER, self.class("SmallInteger")),
            (special::CLASS_STRING, self.class("String")),
            (special::CLASS_ARRAY, array),
            (special::CLASS_FLOAT, self.class("Float")),
            (special::CLASS_METHOD_CONTEXT, self.class("MethodContext")),
            (special::CLASS_BLOCK_CONTEXT, self.class("BlockContext")),
            (special::CLASS_POINT, self.class("Point")),
            (
                special::CLASS_LARGE_POSITIVE,
                self.class("LargePositiveInteger"),
            ),
            (special::CLASS_MESSAGE, self.class("Message")),
            (special::CLASS_COMPILED_METHOD, self.class("CompiledMethod")),
            (special::CLASS_CHARACTER, character),
            (special::SELECTOR_DNU, dnu),
            (special::SELECTOR_CANNOT_RETURN, cannot),
            (special::SPECIAL_SELECTORS, sels),
            (special::CHARACTER_TABLE, char_table),
            (special::SELECTOR_MUST_BE_BOOLEAN, must),
            (special::CLASS_BLOCK_CLOSURE, self.class("BlockClosure")),
            (
                special::CLASS_LARGE_NEGATIVE,
                self.class("LargeNegativeInteger"),
            ),
            (special::SELECTOR_ABOUT_TO_RETURN, about),
        ] {
            sp[i] = w;
        }
        if let Some(assoc) = self.scheduler {
            sp[special::SCHEDULER_ASSOCIATION] = assoc;
        }
        let special_array = self.b.add(array, Format::Pointers, sp, vec![])?;
        self.b.set_slot(special_array, special::NIL, nil)?;
        self.b.add_root("specialObjects", special_array)?;
        self.b.add_root("nil", nil)?;
        self.b.add_root("true", t)?;
        self.b.add_root("false", f)?;
        let version = if self.closures { 6505 } else { 6502 };
        self.b
            .add_root("image.version", Word::int(version).expect("small"))?;
        for (name, &c) in &self.classes {
            self.b.add_root(&format!("class.{name}"), c)?;
        }
        self.b
            .set_immediate_classes(Some(self.class("SmallInteger")), None);
        let base = self.b.freeze()?;
        let symbols = Symbols::from_base(&base);
        Ok((base, symbols))
    }
}

/// The class named `name` of a synthetic base (its `class.<name>` root).
pub fn class_of_base(base: &BaseHeap, name: &str) -> Option<Value> {
    base.root(&format!("class.{name}"))
}
