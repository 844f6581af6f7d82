"""An estimate of Cortex-M4 cycles from the instructions QEMU executed.

QEMU counts instructions, not cycles. The estimate here replays what one run executed,
instruction by instruction and in order, and gives each the cycles of the Cortex-M4
Technical Reference Manual's instruction timing table (zero-wait memory):

- one cycle for data processing, moves, compares, IT, saturation, packing, bit fields, every
  multiply and DSP instruction (MUL, MLA, MLS, SMULL, SMLAL, SMLAD, SMLABB, ...);
- single loads 2 cycles, 1 when pipelined behind a single load (its address not computed
  from that load's result); a store with an immediate offset 1 (the write buffer), with a
  register offset 2, 1 behind a load; one more cycle when the address registers come from the
  data-processing instruction just before (no forwarding path to address generation);
- LDRD/STRD 3; LDM/STM/PUSH/POP 1 + registers, + P when the PC is loaded;
- a branch taken 1 + P, not taken 1 (taken: the next block QEMU ran is not the fall-through);
  TBB/TBH 2 + P; any other write to the PC 1 + P;
- SDIV/UDIV `divide` cycles (2-12 by operand size; the worst case by default);
- VFP: multiply-accumulate 3, divide and square root 14, the rest like their integer kin.

P, the pipeline refill, is 1-3 cycles by target alignment and width and by whether the core
speculates the address early; `M4Timing.refill` sets it (2 by default; the bench also states
1 and 3 as the band).

Memory is assumed zero-wait, as on an STM32L4R5 at 120 MHz (5 flash wait states) whose ART
accelerator serves the instruction fetches of hot loops from its cache and prefetch buffer,
with the model's weights read from SRAM. The estimate ignores: flash wait states on cache
misses (instruction and data: weights read from flash would pay them per 8-byte line); the
bus matrix and DMA contention; interrupt entry and exit (12 cycles each; the port's SysTick
is the only interrupt); unaligned accesses that need two bus transactions; the result
latency of loads used by the next instruction beyond the rules above; an ISB's or DSB's wait.

How the executed instructions are known: QEMU's `-d in_asm,exec,nochain` log prints every
translated block's instructions once (in_asm) and one line before each execution of a block
(exec; `nochain` makes every block go through the logged path). Replaying the exec lines in
order with the blocks' instructions gives the executed instruction stream. Debian's QEMU 7.2
has no TCG plugins built in, and the log needs nothing built.

    trace = trace_run(elf, "td_opt_invoke")       # the instructions one call executed
    estimate = estimate_cycles(trace)              # .cycles, .instructions, .segments
    fetch_misses(trace)                            # what the zero-wait assumption leaves out
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from tinydrift.errors import TinydriftError

CONDITIONS = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al"}
SINGLE_LOADS = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrt", "ldrbt", "ldrht", "ldrsbt", "ldrsht", "ldrex",
                "ldrexb", "ldrexh", "vldr"}
SINGLE_STORES = {"str", "strb", "strh", "strt", "strbt", "strht", "strex", "strexb", "strexh", "vstr"}
DOUBLES = {"ldrd", "strd"}
MULTIPLE_LOADS = {"ldm", "ldmia", "ldmfd", "ldmdb", "ldmea", "pop", "vldm", "vldmia", "vldmdb", "vpop"}
MULTIPLE_STORES = {"stm", "stmia", "stmea", "stmdb", "stmfd", "push", "vstm", "vstmia", "vstmdb", "vpush"}
BRANCHES = {"b", "bl", "bx", "blx", "cbz", "cbnz"}
TABLE_BRANCHES = {"tbb", "tbh"}
DIVIDES = {"sdiv", "udiv"}
VFP_MULTIPLY_ACCUMULATE = {"vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"}
VFP_SLOW = {"vdiv", "vsqrt"}
# Instructions whose first operand is not a destination register.
NO_DESTINATION = {"cmp", "cmn", "tst", "teq", "it", "ite", "itt", "itee", "itet", "itte", "ittt", "iteee", "iteet",
                  "itete", "itett", "ittee", "ittet", "ittte", "itttt", "nop", "dsb", "dmb", "isb", "bkpt", "svc",
                  "wfi", "wfe", "cpsid", "cpsie", "msr"}
KNOWN = (SINGLE_LOADS | SINGLE_STORES | DOUBLES | MULTIPLE_LOADS | MULTIPLE_STORES | BRANCHES | TABLE_BRANCHES
         | DIVIDES | VFP_MULTIPLY_ACCUMULATE | VFP_SLOW | NO_DESTINATION)
MULTIPLY_DSP = re.compile(r"^(mul|mla|mls|smul|smla|smls|smmul|smmla|smmls|umul|umla|umaal|smuad|smusd|smlad|smlsd|"
                          r"sxtab|sxtb16|uxtb16|sxtab16|uxtab16|ssat|usat|qadd|qsub|qdadd|qdsub|sadd|ssub|uadd|usub|"
                          r"shadd|shsub|uhadd|uhsub|sasx|ssax|pkh|sel)")
REGISTER = re.compile(r"\b(r1[0-2]|r[0-9]|sb|sl|fp|ip|sp|lr|pc)\b")

_IN_ASM_LINE = re.compile(r"^0x([0-9a-f]+):\s+((?:[0-9a-f]{4} ?){1,2})\s+(\S+)\s*(.*)$")
_EXEC_LINE = re.compile(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/[0-9a-f]+/([0-9a-f]+)\] (\S*)")


@dataclass(frozen=True)
class Instruction:
    address: int
    size: int
    mnemonic: str  # as QEMU's disassembler prints it, e.g. "ldr.w", "smlad", "bne"
    operands: str

    @property
    def base(self) -> str:
        """The mnemonic without width qualifier and condition, for the instructions whose
        timing is not one cycle: "ldr.w" -> "ldr", "bne" -> "b", "popne" -> "pop". Others
        (all one cycle) keep their name: "adds", "movne", "smlad"."""
        name = self.mnemonic.split(".")[0]
        if name not in KNOWN and name[-2:] in CONDITIONS and name[:-2] in KNOWN:
            return name[:-2]
        return name

    @property
    def address_registers(self) -> set[str]:
        inside = re.search(r"\[([^\]]*)\]", self.operands)
        return set(REGISTER.findall(inside.group(1))) if inside else set()

    @property
    def destination(self) -> str | None:
        """The register a data-processing instruction writes (its first operand)."""
        if self.base in KNOWN:
            return None
        first = self.operands.split(",")[0].strip()
        return first if REGISTER.fullmatch(first) else None

    def list_count(self) -> int:
        """Registers in a {list} (VFP double registers count two words)."""
        inside = re.search(r"\{([^}]*)\}", self.operands)
        if not inside:
            return 1
        count = 0
        for item in inside.group(1).split(","):
            item = item.strip()
            ends = item.split("-")
            width = 2 if item.startswith("d") else 1
            if len(ends) == 2:
                count += width * (int(ends[1].strip()[1:]) - int(ends[0][1:]) + 1)
            else:
                count += width
        return count

    def writes_pc(self) -> bool:
        first = self.operands.split(",")[0].strip()
        return first == "pc" or ("pc" in self.operands and self.base in ("pop", "ldm", "ldmia", "ldmfd"))


@dataclass(frozen=True)
class M4Timing:
    """The Cortex-M4's documented timings that are ranges: P and the divide."""

    refill: int = 2  # P: 1..3
    divide: int = 12  # SDIV/UDIV: 2..12


@dataclass
class Segment:
    """What one called function (and what it called) executed inside the traced call."""

    function: str
    instructions: int = 0
    cycles: int = 0
    refills: int = 0  # pipeline refills paid: the cycles at another P are cycles + (P' - P) * refills
    # executed instructions per class: load, store, load_store_multiple, branch_taken,
    # branch_not_taken, multiply_dsp (multiplies, SIMD, saturation), divide, other
    mix: Counter = field(default_factory=Counter)


@dataclass
class Trace:
    """The executed instruction stream of one call: blocks in order, each a tuple of
    Instructions, and the function each block belongs to."""

    function: str
    blocks: list[tuple[tuple[Instruction, ...], str]]

    @property
    def instructions(self) -> int:
        return sum(len(block) for block, _ in self.blocks)


@dataclass
class Estimate:
    function: str
    timing: M4Timing
    cycles: int
    instructions: int
    segments: list[Segment]  # in call order: the traced function's own code is "<function> (self)"
    mix: Counter
    refills: int

    def cycles_at(self, refill: int) -> int:
        """The estimate with another pipeline refill P (the TRM's range is 1-3)."""
        return self.cycles + (refill - self.timing.refill) * self.refills


def parse_log(text: str, function: str, caller: str | None = None) -> Trace:
    """The blocks executed from the first entry into `function` until control is back in
    `caller` (default: the function the entry came from), from a `-d in_asm,exec,nochain`
    log. Later calls are ignored."""
    # A block is known by its address and its compile flags: QEMU may translate another
    # copy of a block (e.g. a shortened one-off, another instruction limit in the flags),
    # shown by in_asm right before its first execution.
    translated: dict[tuple[int, str], tuple[Instruction, ...]] = {}
    blocks: list[tuple[tuple[Instruction, ...], str]] = []
    pending: list[Instruction] = []
    previous_symbol = None
    inside = False
    for line in text.splitlines():
        if line.startswith("0x"):
            match = _IN_ASM_LINE.match(line)
            if match:
                address, code, mnemonic, operands = match.groups()
                pending.append(Instruction(int(address, 16), len(code.replace(" ", "")) // 2, mnemonic,
                                           operands.strip()))
            continue
        if not line.startswith("Trace"):
            continue
        match = _EXEC_LINE.match(line)
        if match is None:
            continue
        pc, flags, symbol = int(match.group(1), 16), match.group(2), match.group(3)
        if pending:
            if pending[0].address == pc:
                translated[(pc, flags)] = tuple(pending)
            pending = []
        if not inside:
            if symbol == function:
                inside = True
                caller = caller or previous_symbol
            else:
                previous_symbol = symbol
                continue
        elif symbol == caller:
            break
        block = translated.get((pc, flags))
        if block is None:
            raise TinydriftError(f"QEMU's log executes a block at 0x{pc:x} it never showed translated")
        blocks.append((block, symbol))
    if not blocks:
        raise TinydriftError(f"the traced run never entered {function}")
    return Trace(function, blocks)


def trace_run(elf: Path, function: str, *, caller: str | None = None, timeout: float = 300.0) -> Trace:
    """Run `elf` in QEMU with the execution log on and return the first call of `function`.
    The log (tens of MB for a few million instructions) lives in a temporary folder."""
    from tinydrift.target import emulator

    with tempfile.TemporaryDirectory(prefix="td-trace-") as folder:
        log = Path(folder) / "qemu.log"
        # Not under -icount: its instruction budget ends blocks at their entry after their exec
        # line was printed (thousands of blocks logged that did not run). Without it only an
        # interrupt does that, so the estimate repeats to within a few tens of cycles.
        result = emulator.run(elf, timeout=timeout, extra_args=["-d", "in_asm,exec,nochain", "-D", str(log)])
        if result.exit_code != 0:
            raise TinydriftError(f"{elf} exited with {result.exit_code} in QEMU while traced: "
                                 f"{result.output.decode(errors='replace')[-300:]}")
        return parse_log(log.read_text(errors="replace"), function, caller)


def _instruction_cycles(ins: Instruction, previous: Instruction | None, taken: bool | None,
                        timing: M4Timing) -> tuple[int, str]:
    """Cycles and mix class of one executed instruction; `taken` for the last one of a block."""
    base = ins.base
    P = timing.refill
    after_load = previous is not None and previous.base in SINGLE_LOADS
    dependent_on_alu = (previous is not None and previous.destination is not None
                        and previous.destination in ins.address_registers)
    if base in SINGLE_LOADS:
        if ins.operands.split(",")[0].strip() == "pc":
            return 2 + P, "load"
        pipelined = after_load and not (set(REGISTER.findall(previous.operands.split(",")[0])) & ins.address_registers)
        return (1 if pipelined else 2) + int(dependent_on_alu), "load"
    if base in SINGLE_STORES:
        register_offset = len(ins.address_registers) > 1
        return (1 if after_load or not register_offset else 2) + int(dependent_on_alu), "store"
    if base in DOUBLES:
        return 3 + int(dependent_on_alu), "load" if base == "ldrd" else "store"
    if base in MULTIPLE_LOADS | MULTIPLE_STORES:
        return 1 + ins.list_count() + (P if base in MULTIPLE_LOADS and ins.writes_pc() else 0), "load_store_multiple"
    if base in TABLE_BRANCHES:
        return 2 + P, "branch_taken"
    if base in BRANCHES:
        if taken is False:
            return 1, "branch_not_taken"
        return 1 + P, "branch_taken"
    if base in DIVIDES:
        return timing.divide, "divide"
    if base in VFP_SLOW:
        return 14, "other"
    if base in VFP_MULTIPLY_ACCUMULATE:
        return 3, "multiply_dsp"
    if ins.writes_pc():
        return 1 + P, "branch_taken"
    return 1, "multiply_dsp" if MULTIPLY_DSP.match(base) else "other"


def _block_cycles(block: tuple[Instruction, ...], previous: Instruction | None, taken: bool | None,
                  timing: M4Timing) -> tuple[int, int, Counter]:
    """Cycles, pipeline refills and mix of one execution of a block."""
    cycles = refills = 0
    mix = Counter()
    without_refill = M4Timing(refill=0, divide=timing.divide)
    for position, ins in enumerate(block):
        ins_taken = taken if position == len(block) - 1 else None
        spent, kind = _instruction_cycles(ins, previous, ins_taken, timing)
        refills += (spent - _instruction_cycles(ins, previous, ins_taken, without_refill)[0]) // max(timing.refill, 1)
        cycles += spent
        mix[kind] += 1
        previous = ins
    return cycles, refills, mix


def estimate_cycles(trace: Trace, timing: M4Timing = M4Timing()) -> Estimate:
    """The estimate for a traced call, per called function in call order (each call the
    traced function makes starts a segment named after the function it enters)."""
    segments: list[Segment] = []
    own = Segment(f"{trace.function} (self)")
    current = own
    # A block's cycles depend only on the instruction before it and whether its last
    # branch was taken: computed once per such case, not per execution.
    known: dict[tuple[int, int, bool | None], tuple[int, int, Counter]] = {}
    previous: Instruction | None = None
    for index, (block, symbol) in enumerate(trace.blocks):
        if symbol == trace.function:
            current = own
        elif current is own:
            current = Segment(symbol)
            segments.append(current)
        # A block ends at a branch: it was taken when the next block is not the fall-through.
        last = block[-1]
        following = trace.blocks[index + 1][0][0].address if index + 1 < len(trace.blocks) else None
        taken = None if following is None else following != last.address + last.size
        key = (id(block), id(previous), taken)
        if key not in known:
            known[key] = _block_cycles(block, previous, taken, timing)
        cycles, refills, mix = known[key]
        current.cycles += cycles
        current.refills += refills
        current.instructions += len(block)
        current.mix.update(mix)
        previous = last
    segments.append(own)
    total = Counter()
    for segment in segments:
        total.update(segment.mix)
    return Estimate(trace.function, timing, sum(s.cycles for s in segments), sum(s.instructions for s in segments),
                    segments, total, sum(s.refills for s in segments))


FLASH_WAIT_STATES = 5  # an STM32L4R5's flash at 120 MHz


def fetch_misses(trace: Trace, cache_bytes: int = 1024, line_bytes: int = 32) -> int:
    """Instruction-fetch lines a cache of `cache_bytes` in lines of `line_bytes` (fully
    associative, least recently used out) would miss over the traced call, starting empty:
    a stand-in for the ART accelerator's 1 KB instruction cache, to size what the zero-wait
    assumption leaves out: each miss waits for flash, about FLASH_WAIT_STATES cycles at 120
    MHz when the prefetch buffer brings the rest of the line, up to four 64-bit reads'
    worth without it."""
    capacity = cache_bytes // line_bytes
    cache: OrderedDict[int, None] = OrderedDict()
    misses = 0
    for block, _ in trace.blocks:
        first, last = block[0], block[-1]
        for line in range(first.address // line_bytes, (last.address + last.size - 1) // line_bytes + 1):
            if line in cache:
                cache.move_to_end(line)
                continue
            misses += 1
            cache[line] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return misses
