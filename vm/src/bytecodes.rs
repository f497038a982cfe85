//! The V3 bytecode set, defined once.
//!
//! [`RANGES`] is the one table of the set: each entry a range of bytecodes, how many bytes
//! the instruction takes and its mnemonic. [`decode`] maps a bytecode to an [`Op`] (the
//! operand encoded in the bytecode itself decoded; operands in following bytes are read by
//! the handler), and the disassembler ([`disassemble`]) and the tests derive from the same
//! two. Bytecodes 138-143 are the closure extensions: in a pre-closure image they decode to
//! [`Op::Unknown`]. Among them 139 is `callPrimitive` (three bytes, [`Op::CallPrimitive`]),
//! which starts a Spur method with a primitive (the V3 compilers of closure images do not
//! emit it).

/// One decoded bytecode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// 0-15: push receiver variable n.
    PushReceiverVariable(usize),
    /// 16-31: push temporary n.
    PushTemp(usize),
    /// 32-63: push literal n.
    PushLiteralConstant(usize),
    /// 64-95: push the value of literal variable (association) n.
    PushLiteralVariable(usize),
    /// 96-103: pop into receiver variable n.
    PopIntoReceiverVariable(usize),
    /// 104-111: pop into temporary n.
    PopIntoTemp(usize),
    /// 112: push self.
    PushReceiver,
    /// 113-119: push true, false, nil, -1, 0, 1, 2 (the operand is bytecode - 113).
    PushConstant(u8),
    /// 120: return self.
    ReturnReceiver,
    /// 121-123: return true, false, nil.
    ReturnConstant(u8),
    /// 124: return the top of the stack from the method.
    ReturnTop,
    /// 125: return the top of the stack from the block to its caller.
    BlockReturnTop,
    /// 128: extended push (next byte: kind and index).
    ExtendedPush,
    /// 129: extended store.
    ExtendedStore,
    /// 130: extended store and pop.
    ExtendedStorePop,
    /// 131: single extended send (next byte: args and literal).
    SingleExtendedSend,
    /// 132: double extended do-anything (two bytes).
    DoubleExtended,
    /// 133: single extended super send.
    SingleExtendedSuper,
    /// 134: second extended send (2 bits of args, 6 of literal).
    SecondExtendedSend,
    /// 135: pop.
    Pop,
    /// 136: duplicate the top.
    Dup,
    /// 137: push thisContext.
    PushThisContext,
    /// 138: push a new Array (closure images).
    PushNewArray,
    /// 140: push a temporary of a temp vector.
    PushRemoteTemp,
    /// 141: store into a temporary of a temp vector.
    StoreRemoteTemp,
    /// 142: pop into a temporary of a temp vector.
    PopIntoRemoteTemp,
    /// 139: call the primitive in the next two bytes (closure images). The primitive is
    /// tried before the method is activated, so when this runs it has failed: it skips its
    /// operands to the fallback code.
    CallPrimitive,
    /// 143: push a closure.
    PushClosure,
    /// 144-151: jump forward 1-8.
    Jump(isize),
    /// 152-159: pop, jump forward 1-8 if false.
    JumpIfFalse(isize),
    /// Conditional jump on true (only long form).
    JumpIfTrue(isize),
    /// 160-167: long jump (operand: bytecode & 7; offset (op - 4) * 256 + next byte).
    LongJump(u8),
    /// 168-171: long jump if true (operand: bytecode & 3).
    LongJumpIfTrue(u8),
    /// 172-175: long jump if false.
    LongJumpIfFalse(u8),
    /// 176-207: send special selector n.
    SpecialSend(u8),
    /// 208-255: send literal selector with 0, 1 or 2 arguments.
    Send {
        /// The literal index of the selector.
        literal: usize,
        /// The argument count.
        args: usize,
    },
    /// 126, 127 and the closure bytecodes in a pre-closure image.
    Unknown,
}

/// The bytecode set: first and last bytecode of each range, the instruction's length in
/// bytes, and its mnemonic.
pub const RANGES: &[(u8, u8, usize, &str)] = &[
    (0, 15, 1, "pushRcvr"),
    (16, 31, 1, "pushTemp"),
    (32, 63, 1, "pushLit"),
    (64, 95, 1, "pushLitVar"),
    (96, 103, 1, "popIntoRcvr"),
    (104, 111, 1, "popIntoTemp"),
    (112, 112, 1, "self"),
    (113, 119, 1, "pushConst"),
    (120, 120, 1, "^self"),
    (121, 123, 1, "^const"),
    (124, 124, 1, "^top"),
    (125, 125, 1, "blockReturn"),
    (126, 127, 1, "unknown"),
    (128, 128, 2, "extPush"),
    (129, 129, 2, "extStore"),
    (130, 130, 2, "extStorePop"),
    (131, 131, 2, "send"),
    (132, 132, 3, "doubleExt"),
    (133, 133, 2, "superSend"),
    (134, 134, 2, "send2"),
    (135, 135, 1, "pop"),
    (136, 136, 1, "dup"),
    (137, 137, 1, "thisContext"),
    (138, 138, 2, "pushNewArray"),
    (139, 139, 3, "callPrimitive"),
    (140, 140, 3, "pushRemoteTemp"),
    (141, 141, 3, "storeRemoteTemp"),
    (142, 142, 3, "popIntoRemoteTemp"),
    (143, 143, 4, "pushClosure"),
    (144, 151, 1, "jump"),
    (152, 159, 1, "jumpFalse"),
    (160, 167, 2, "longJump"),
    (168, 171, 2, "longJumpTrue"),
    (172, 175, 2, "longJumpFalse"),
    (176, 207, 1, "special"),
    (208, 223, 1, "send0"),
    (224, 239, 1, "send1"),
    (240, 255, 1, "send2args"),
];

/// The range entry of bytecode `b`.
pub fn range_of(b: u8) -> (u8, u8, usize, &'static str) {
    // RANGES covers 0-255 without gaps (checked by a test).
    RANGES
        .iter()
        .copied()
        .find(|&(lo, hi, _, _)| (lo..=hi).contains(&b))
        .unwrap_or((b, b, 1, "unknown"))
}

/// Decodes bytecode `b`; `closures` says whether the image uses the closure bytecodes.
#[inline(always)]
pub fn decode(b: u8, closures: bool) -> Op {
    let n = usize::from(b);
    match b {
        0..=15 => Op::PushReceiverVariable(n),
        16..=31 => Op::PushTemp(n - 16),
        32..=63 => Op::PushLiteralConstant(n - 32),
        64..=95 => Op::PushLiteralVariable(n - 64),
        96..=103 => Op::PopIntoReceiverVariable(n - 96),
        104..=111 => Op::PopIntoTemp(n - 104),
        112 => Op::PushReceiver,
        113..=119 => Op::PushConstant(b - 113),
        120 => Op::ReturnReceiver,
        121..=123 => Op::ReturnConstant(b - 121),
        124 => Op::ReturnTop,
        125 => Op::BlockReturnTop,
        128 => Op::ExtendedPush,
        129 => Op::ExtendedStore,
        130 => Op::ExtendedStorePop,
        131 => Op::SingleExtendedSend,
        132 => Op::DoubleExtended,
        133 => Op::SingleExtendedSuper,
        134 => Op::SecondExtendedSend,
        135 => Op::Pop,
        136 => Op::Dup,
        137 => Op::PushThisContext,
        138 if closures => Op::PushNewArray,
        139 if closures => Op::CallPrimitive,
        140 if closures => Op::PushRemoteTemp,
        141 if closures => Op::StoreRemoteTemp,
        142 if closures => Op::PopIntoRemoteTemp,
        143 if closures => Op::PushClosure,
        144..=151 => Op::Jump(n as isize - 143),
        152..=159 => Op::JumpIfFalse(n as isize - 151),
        160..=167 => Op::LongJump(b - 160),
        168..=171 => Op::LongJumpIfTrue(b & 3),
        172..=175 => Op::LongJumpIfFalse(b & 3),
        176..=207 => Op::SpecialSend(b - 176),
        208..=223 => Op::Send {
            literal: n - 208,
            args: 0,
        },
        224..=239 => Op::Send {
            literal: n - 224,
            args: 1,
        },
        240..=255 => Op::Send {
            literal: n - 240,
            args: 2,
        },
        _ => Op::Unknown,
    }
}

/// The `callPrimitive` bytecode (closure images).
pub const CALL_PRIMITIVE: u8 = 139;

/// The length in bytes of the instruction starting with `b`: its range's, or one byte for
/// an unknown bytecode.
pub fn instruction_len(b: u8, closures: bool) -> usize {
    if matches!(decode(b, closures), Op::Unknown) {
        1
    } else {
        range_of(b).2
    }
}

/// The instructions of `bytecodes`, one line each: offset, bytes, mnemonic and operand.
///
/// ```
/// let text = cowheap_vm::bytecodes::disassemble(&[112, 118, 176, 124], false);
/// assert!(text.contains("special"));
/// assert_eq!(text.lines().count(), 4);
/// ```
pub fn disassemble(bytecodes: &[u8], closures: bool) -> String {
    let mut out = String::new();
    let mut pc = 0;
    while pc < bytecodes.len() {
        let b = bytecodes[pc];
        let (_, _, _, name) = range_of(b);
        let len = instruction_len(b, closures);
        let end = (pc + len).min(bytecodes.len());
        let raw: Vec<String> = bytecodes[pc..end].iter().map(|x| x.to_string()).collect();
        out.push_str(&format!(
            "{pc:5} <{}> {name} {:?}\n",
            raw.join(" "),
            decode(b, closures)
        ));
        pc = end;
    }
    out
}
