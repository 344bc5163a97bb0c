"""Parametric motion primitives.

Each primitive is built from a parsed Request and a seeded random generator (its parameters --
speed, cadence, amplitudes, style -- are sampled from plausible ranges), has a duration, and
describes itself as signals over its local time ``tl`` (seconds, may run outside [0, duration]
during transitions, where signals hold their end values):

- ``velocity``: forward / leftward speed (m/s) and yaw rate (rad/s) of the ground path;
- ``pelvis``: drop below standing height, forward/left shift, pitch/roll/yaw, vertical lift (m, rad);
- ``stance``: stance width scale and fore-aft offsets of the left and right foot (m);
- ``steps``: footsteps (which foot lifts when and lands when; how high; how far the heel rises);
- ``upper``: local rotations of spine, head and arms (legs come from IK, see ``legs``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from motion.generate.blend import smoothstep
from motion.generate.parse import Request
from motion.generate.pose import arm, hanging_arm, torso, unit
from motion.rotations import matrix_to_quat, quat_slerp, quat_to_matrix

GRAVITY = 9.81
LEFT, RIGHT = 0, 1
NEUTRAL_STANCE = (1.0, 0.0, 0.0)


@dataclasses.dataclass
class Step:
    """One foot's swing: lift-off and landing times (s, global), toe clearance (m), heel rise at
    lift-off (rad); ``ballistic`` swings (jumps) follow a parabola instead of a stepping arc."""

    foot: int
    lift: float
    land: float
    height: float
    heel: float
    ballistic: bool = False


def _bump(tl: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 outside [a, b], smoothly up to 1 and back (sin^2), integral (b - a) / 2."""
    x = np.clip((tl - a) / max(b - a, 1e-9), 0.0, 1.0)
    return np.sin(np.pi * x) ** 2


def _envelope(tl: np.ndarray, duration: float, ramp: float) -> np.ndarray:
    """Rises over the first ``ramp`` seconds, falls over the last ``ramp`` seconds."""
    return smoothstep(tl / ramp) * smoothstep((duration - tl) / ramp)


class Primitive:
    """Base: standing still with relaxed arms; subclasses override what they change."""

    kind = "idle"
    stepping = False  # does the primitive walk its own footsteps?
    locomotion = False  # walking or running (travels by stepping)
    ease_in = ease_out = False
    arm_gain = 0.0  # arm swing (rad) per metre that the opposite foot leads
    pelvis_yaw_gain = 0.0  # pelvis yaw (rad) per metre that the left foot leads
    compression = 0.0  # pelvis dip (m) at mid-stance, spring-mass style

    def __init__(self, req: Request, rng: np.random.Generator):
        self.req = req
        self.start = 0.0
        self.stretchable = "seconds" not in req.quantities and self._length_open()
        self.natural = self._natural_duration()
        self.duration = req.quantities.get("seconds", self.natural)
        self.min_duration = 0.5 * self.natural if self.stretchable else self.duration
        self.arm_bend = rng.uniform(0.2, 0.4)
        self.breath = (rng.uniform(0.2, 0.3), rng.uniform(0, 2 * np.pi))

    def _length_open(self) -> bool:
        """True when the text fixed no quantity that sets the length (so ``seconds`` may stretch it)."""
        return True

    def _natural_duration(self) -> float:
        return 2.0

    def set_neighbours(self, before: "Primitive | None", after: "Primitive | None") -> None:
        """Locomotion eases in from / out to a standstill when the neighbour does not travel."""
        self.ease_in = before is None or not before.locomotion
        self.ease_out = after is None or not after.locomotion

    def retime(self, duration: float) -> None:
        """Give a stretchable primitive a new length (repetition counts follow it)."""
        self.duration = duration

    def _repeats(self, fixed: float, cycle: float, overhead: float) -> int:
        """How many repetitions: as asked, or as many as fit when the length was stretched."""
        if self.stretchable:
            return max(1, int(round((self.duration - overhead) / cycle)))
        return max(1, int(round(fixed)))

    # --- signals -------------------------------------------------------------------------------
    def velocity(self, tl: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z = np.zeros_like(tl)
        return z, z, z

    def pelvis(self, tl: np.ndarray) -> dict[str, np.ndarray]:
        f, ph = self.breath
        return {"drop": 0.004 + 0.003 * np.sin(2 * np.pi * f * tl + ph),
                "lat": 0.012 * np.sin(np.pi * f * tl + ph)}

    def stance(self) -> tuple[float, float, float]:
        return NEUTRAL_STANCE

    def steps(self, t0: float, first: int) -> list[Step]:
        """Footsteps from global time ``t0`` on (at the earliest), starting with foot ``first``."""
        return []

    def upper(self, tl: np.ndarray, lead: np.ndarray) -> dict[str, np.ndarray]:
        f, ph = self.breath
        n = len(tl)
        breath = 0.02 * np.sin(2 * np.pi * f * tl + ph)
        swing = self.arm_gain * lead
        parts = torso(breath, head_pitch=-breath, n=n)
        parts |= hanging_arm("left", -swing, self.arm_bend + 0.3 * np.maximum(-swing, 0))
        parts |= hanging_arm("right", swing, self.arm_bend + 0.3 * np.maximum(swing, 0))
        return parts


class Idle(Primitive):
    kind = "idle"


class Walk(Primitive):
    """Walking and running at a constant speed and cadence."""

    kind = "walk"
    stepping = True
    locomotion = True
    EASE = 0.7  # seconds to reach full speed from a standstill or to stop

    def __init__(self, req: Request, rng: np.random.Generator):
        self.run = req.kind == "run"
        style = req.style
        if self.run:
            lo, hi = {"jog": (2.1, 2.5), "sprint": (3.6, 3.9)}.get(style, (2.6, 3.3))
            self.speed = float(np.clip(rng.uniform(lo, hi) * req.speed, 2.0, 3.95))
            self.cadence = 2.45 + 0.15 * self.speed + rng.uniform(-0.08, 0.08)  # steps per second
            self.duty = 0.36 + rng.uniform(-0.02, 0.02)  # fraction of a gait cycle on the ground
            self.clearance, self.heel, self.lean = 0.16, 0.75, 0.14 + 0.02 * self.speed
            self.arm_gain, self.compression = 0.55 * rng.uniform(0.8, 1.2), 0.06
        else:
            self.speed = float(np.clip(rng.uniform(1.18, 1.42) * req.speed, 1.0, 1.6))
            self.cadence = 1.0 + 0.6 * self.speed + rng.uniform(-0.05, 0.05)
            self.duty = 0.6 + rng.uniform(-0.02, 0.02)
            self.clearance, self.heel, self.lean = 0.08 + (0.05 if style == "march" else 0.0), 0.9, 0.05
            self.arm_gain, self.compression = 0.5 * rng.uniform(0.75, 1.25), 0.0
        if req.direction == "backward":
            self.speed, self.cadence, self.heel, self.lean = -0.55 * self.speed, 0.9 * self.cadence, 0.3, 0.0
        self.pelvis_yaw_gain = 0.12 if not self.run else 0.08
        super().__init__(req, rng)
        self.kind = req.kind

    def _length_open(self) -> bool:
        return not ({"steps", "meters"} & set(self.req.quantities))

    def _natural_duration(self) -> float:
        q = self.req.quantities
        if "steps" in q:
            return q["steps"] / self.cadence
        if "meters" in q:
            return q["meters"] / abs(self.speed)
        return 3.0

    def set_neighbours(self, before, after):
        """Also lengthen a walk of N steps or metres by the distance lost while easing in and out
        (a smoothstep ramp of length r covers r/2 at full speed)."""
        super().set_neighbours(before, after)
        if not self.stretchable and "seconds" not in self.req.quantities:
            self.duration = self.natural + 0.5 * self.EASE * (self.ease_in + self.ease_out)
            self.min_duration = self.duration

    def velocity(self, tl):
        """Constant speed; from or to a standstill it eases in / out inside the primitive's own
        time, so the body stops before a jump or a wave starts (``ease_in`` / ``ease_out`` are
        set by the planner from the neighbours)."""
        z = np.zeros_like(tl)
        ramp = min(self.EASE, 0.4 * self.duration)
        gain = smoothstep(tl / ramp) if self.ease_in else 1.0
        if self.ease_out:
            gain = gain * smoothstep((self.duration - tl) / ramp)
        return z + self.speed * gain, z, z

    def pelvis(self, tl):
        return {"drop": np.full_like(tl, 0.02 if not self.run else 0.05),
                "pitch": np.full_like(tl, self.lean)}

    def steps(self, t0, first):
        period = 1.0 / self.cadence
        swing = (1.0 - self.duty) * 2.0 * period
        end = self.start + self.duration
        n = max(2, int(np.floor((end - t0 - swing) / period)) + 1)
        if self.ease_out:
            n += 1  # the last foot closes up beside the other one
        return [Step((first + k) % 2, t0 + k * period, t0 + k * period + swing, self.clearance, self.heel)
                for k in range(n)]

    def upper(self, tl, lead):
        parts = super().upper(tl, lead)
        n = len(tl)
        if self.run:
            swing = np.clip(self.arm_gain * lead, -0.9, 0.9)
            parts |= hanging_arm("left", -swing + 0.15, 1.45 - 0.25 * np.maximum(swing, 0), spread=0.2)
            parts |= hanging_arm("right", swing + 0.15, 1.45 - 0.25 * np.maximum(-swing, 0), spread=0.2)
        parts |= torso(0.0, head_pitch=-self.lean * 0.8, n=n)
        return parts


class Turn(Primitive):
    """Turning on the spot with small steps; positive degrees turn left (counter-clockwise)."""

    kind = "turn"
    stepping = True

    def __init__(self, req, rng):
        q = req.quantities
        degrees = q.get("degrees", {"around": 180.0, "": 90.0}.get(req.direction, 90.0))
        if req.style == "spin" and "degrees" not in q:
            degrees = 360.0
        self.angle = np.deg2rad(degrees) * (-1.0 if req.direction == "right" else 1.0)
        super().__init__(req, rng)

    def _natural_duration(self):
        return 0.5 + 0.8 * abs(self.angle) / (np.pi / 2)

    def velocity(self, tl):
        z = np.zeros_like(tl)  # held outside [0, duration]: the crossfades then keep the exact angle
        return z, z, z + self.angle / self.duration

    def steps(self, t0, first):
        n = max(2, int(np.ceil(abs(self.angle) / np.deg2rad(50))))
        n += n % 2  # both feet finish
        t0 = max(t0, self.start - 0.1)
        period = (self.start + self.duration + 0.25 - t0) / n
        first = LEFT if self.angle > 0 else RIGHT
        return [Step((first + k) % 2, t0 + k * period, t0 + k * period + 0.85 * period, 0.05, 0.25)
                for k in range(n)]


class Wave(Primitive):
    kind = "wave"

    def __init__(self, req, rng):
        self.side = req.direction if req.direction in ("left", "right") else "right"
        self.freq = rng.uniform(1.6, 2.3)
        self.cycles = req.quantities.get("times", 3.0)
        self.height = rng.uniform(0.35, 0.6)  # elevation of the upper arm above horizontal, as y
        super().__init__(req, rng)

    def _length_open(self):
        return "times" not in self.req.quantities

    def _natural_duration(self):
        return 1.1 + self.cycles / self.freq

    def upper(self, tl, lead):
        parts = super().upper(tl, lead)
        s = 1.0 if self.side == "left" else -1.0
        up = _envelope(tl, self.duration, 0.5)[:, None]
        wag = np.sin(2 * np.pi * self.freq * np.clip(tl - 0.5, 0, None))[:, None] * up
        upper = unit(np.broadcast_to([s * 0.85, self.height, 0.3], (len(tl), 3)))
        fore = unit(np.stack([s * (0.15 + 0.45 * wag[:, 0]), np.ones(len(tl)), np.full(len(tl), 0.2)], -1))
        rest = hanging_arm(self.side, np.zeros(len(tl)), self.arm_bend)
        raised = arm(self.side, upper, fore)
        for joint in raised:
            parts[joint] = _slerp_matrices(rest[joint], raised[joint], up[:, 0])
        parts |= torso(0.0, roll=-s * 0.05 * up[:, 0], head_yaw=s * 0.15 * up[:, 0], n=len(tl))
        return parts


class Squat(Primitive):
    kind = "squat"

    def __init__(self, req, rng):
        self.reps = req.quantities.get("times", 1.0)
        self.depth = rng.uniform(0.36, 0.44)
        self.rep_time = rng.uniform(2.0, 2.5)
        super().__init__(req, rng)

    def _length_open(self):
        return "times" not in self.req.quantities

    def _natural_duration(self):
        return self.reps * self.rep_time + 0.4

    def _down(self, tl):
        reps = self._repeats(self.reps, self.rep_time, 0.4)
        rep = (self.duration - 0.4) / reps
        local = np.clip(tl - 0.2, 0, self.duration - 0.4) % rep / rep
        return smoothstep(np.clip(local / 0.4, 0, 1)) * smoothstep(np.clip((1 - local) / 0.4, 0, 1))

    def stance(self):
        return (1.45, 0.0, 0.0)

    def pelvis(self, tl):
        d = self._down(tl)
        return {"drop": 0.01 + self.depth * d, "fwd": -0.12 * d, "pitch": 0.45 * d}

    def upper(self, tl, lead):
        parts = super().upper(tl, lead)
        d = self._down(tl)
        parts |= torso(0.1 * d, head_pitch=-0.5 * d, n=len(tl))
        for side in ("left", "right"):  # arms forward for balance
            parts |= hanging_arm(side, 1.35 * d, self.arm_bend * (1 - d) + 0.1)
        return parts


class Jump(Primitive):
    """Counter-movement jumps: crouch, push off, ballistic flight, absorb the landing."""

    kind = "jump"
    stepping = True
    PREP, PUSH, LAND = 0.35, 0.15, 0.55

    def __init__(self, req, rng):
        self.asked = req.quantities.get("times", 1.0)
        self.apex = rng.uniform(0.25, 0.35) * req.speed
        self.flight = 2 * np.sqrt(2 * self.apex / GRAVITY)
        self.distance = rng.uniform(0.45, 0.65) if req.direction == "forward" else 0.0
        self.crouch = rng.uniform(0.15, 0.22)
        super().__init__(req, rng)
        self.min_duration = self.natural  # flight time is physics: a jump cannot be hurried

    def _length_open(self):
        return "times" not in self.req.quantities

    def _cycle(self):
        return self.PREP + self.PUSH + self.flight + self.LAND

    def _natural_duration(self):
        return max(1, int(round(self.asked))) * self._cycle() + 0.2

    @property
    def count(self) -> int:
        """Jumps asked for, or as many whole jumps as fit a stretched length."""
        if self.stretchable:
            return max(1, int((self.duration - 0.2) / self._cycle()))
        return max(1, int(round(self.asked)))

    def _phase(self, tl):
        """Time within the current jump cycle (s) and the cycle length (duration is shared evenly)."""
        cycle = (self.duration - 0.2) / self.count
        k = np.clip(np.floor(np.clip(tl - 0.1, 0, None) / cycle), 0, self.count - 1)
        return tl - 0.1 - k * cycle, cycle

    def velocity(self, tl):
        u, cycle = self._phase(tl)
        z = np.zeros_like(tl)
        takeoff = self.PREP + self.PUSH
        a, b = takeoff - 0.1, takeoff + self.flight + 0.1
        return self.distance * _bump(u, a, b) / ((b - a) / 2), z, z

    def pelvis(self, tl):
        u, cycle = self._phase(tl)
        takeoff = self.PREP + self.PUSH
        s = np.clip((u - takeoff) / self.flight, 0, 1)
        flight = (u >= takeoff) & (u < takeoff + self.flight)
        crouch = self.crouch * smoothstep(u / self.PREP) * (1 - smoothstep((u - self.PREP) / self.PUSH))
        land = u - takeoff - self.flight
        absorb = self.crouch * 1.1 * np.where(land > 0, np.sin(np.pi * np.clip(land / self.LAND, 0, 1)) ** 1.5, 0.0)
        lift = np.where(flight, 0.05 + 4 * self.apex * s * (1 - s), 0.05 * smoothstep((u - self.PREP) / self.PUSH)
                        * (1 - smoothstep(land / 0.08)))
        return {"drop": 0.01 + crouch + absorb, "lift": lift, "pitch": 0.35 * (crouch + absorb)}

    def steps(self, t0, first):
        cycle = (self.duration - 0.2) / self.count
        out = []
        for k in range(self.count):
            lift = self.start + 0.1 + k * cycle + self.PREP + self.PUSH
            for foot in (LEFT, RIGHT):
                out.append(Step(foot, lift, lift + self.flight, 0.85 * self.apex, 0.6, ballistic=True))
        return out

    def upper(self, tl, lead):
        parts = super().upper(tl, lead)
        u, cycle = self._phase(tl)
        takeoff = self.PREP + self.PUSH
        back = smoothstep(u / self.PREP) * (1 - smoothstep((u - self.PREP) / self.PUSH))
        up = _bump(u, self.PREP, takeoff + self.flight + 0.2)
        swing = -0.7 * back + 1.6 * up
        for side in ("left", "right"):
            parts |= hanging_arm(side, swing, self.arm_bend + 0.3 * up)
        parts |= torso(0.25 * back, head_pitch=-0.25 * back, n=len(tl))
        return parts


class Dance(Primitive):
    """Step-touch to a beat: weight shifts side to side, bounce, arms pumping or swaying (style)."""

    kind = "dance"
    stepping = True

    def __init__(self, req, rng):
        self.beat = rng.uniform(1.7, 2.1)  # beats per second (102-126 bpm)
        self.style = rng.choice(["pump", "sway"])
        self.sway = rng.uniform(0.05, 0.08)
        super().__init__(req, rng)

    def _natural_duration(self):
        return 4.0

    def pelvis(self, tl):
        ph = np.pi * self.beat * tl
        return {"drop": 0.03 + 0.025 * np.sin(2 * ph) ** 2, "lat": self.sway * np.sin(ph),
                "roll": -0.08 * np.sin(ph), "pitch": np.full_like(tl, 0.05)}

    def stance(self):
        return (1.3, 0.0, 0.0)

    def steps(self, t0, first):
        period = 1.0 / self.beat
        t0 = max(t0, self.start)
        n = max(2, int(round((self.start + self.duration - t0) / period)))
        n += n % 2
        return [Step((first + k) % 2, t0 + k * period, t0 + (k + 0.55) * period, 0.06, 0.35) for k in range(n)]

    def upper(self, tl, lead):
        parts = super().upper(tl, lead)
        n = len(tl)
        ph = np.pi * self.beat * tl
        env = _envelope(tl, self.duration, 0.4)
        if self.style == "pump":
            pump = 0.5 + 0.5 * np.sin(2 * ph)
            for side, s in (("left", 1.0), ("right", -1.0)):
                up = unit(np.stack([np.full(n, s * 0.5), 0.3 + 0.7 * pump, np.full(n, 0.4)], -1))
                fore = unit(np.stack([np.full(n, s * 0.1), np.ones(n), np.full(n, 0.2 + 0.3 * (1 - pump))], -1))
                raised, rest = arm(side, up, fore), hanging_arm(side, np.zeros(n), self.arm_bend)
                for j in raised:
                    parts[j] = _slerp_matrices(rest[j], raised[j], env)
        else:
            for side, s in (("left", 1.0), ("right", -1.0)):
                parts |= hanging_arm(side, env * (0.6 + 0.5 * s * np.sin(ph)), env * 1.2 + self.arm_bend, spread=0.3)
        parts |= torso(0.05, yaw=0.15 * np.sin(ph) * env, roll=0.1 * np.sin(ph) * env,
                       head_pitch=0.08 * np.sin(2 * ph) * env, n=n)
        return parts


class Boxing(Primitive):
    """Orthodox guard (left foot forward) and straight punches: jab (left), cross (right)."""

    kind = "boxing"

    def __init__(self, req, rng):
        self.hands = {"left": ["left"], "right": ["right"]}.get(req.direction, ["left", "right"])
        self.count = req.quantities.get("times", 4.0)
        self.interval = rng.uniform(0.55, 0.75)
        self.bounce = rng.uniform(1.6, 2.2)
        super().__init__(req, rng)

    def _length_open(self):
        return "times" not in self.req.quantities

    def _natural_duration(self):
        return 1.2 + self.count * self.interval

    def stance(self):
        return (1.3, 0.14, -0.14)

    def _punches(self, tl):
        """Extension (0..1) of each hand's punch over time."""
        n = self._repeats(self.count, self.interval, 1.2)
        gap = (self.duration - 1.2) / n
        ext = {"left": np.zeros_like(tl), "right": np.zeros_like(tl)}
        for k in range(n):
            hand = self.hands[k % len(self.hands)]
            t0 = 0.6 + k * gap
            ext[hand] = np.maximum(ext[hand], _bump(tl, t0, t0 + min(0.4, 0.9 * gap)))
        return ext

    def pelvis(self, tl):
        return {"drop": 0.06 + 0.012 * np.sin(2 * np.pi * self.bounce * tl) ** 2, "yaw": np.full_like(tl, -0.3),
                "pitch": np.full_like(tl, 0.08)}

    def upper(self, tl, lead):
        parts = super().upper(tl, lead)
        n = len(tl)
        guard_on = _envelope(tl, self.duration, 0.5)
        ext = self._punches(tl)
        twist = -0.15 * ext["left"] + 0.5 * ext["right"]  # chest yaw off the heading (left positive)
        for side, s in (("left", 1.0), ("right", -1.0)):
            e = ext[side][:, None]
            aim = -twist[:, None]  # punch straight ahead whatever the chest's turn
            target = unit(np.concatenate([np.sin(aim) - s * 0.05, np.full((n, 1), 0.05), np.cos(aim)], -1))
            upper = unit((1 - e) * unit([s * 0.35, -0.65, 0.55]) + e * target)
            straight = unit(target + [-s * 0.08, 0.05, 0.0])  # a straight punch keeps a slight bend
            fore = unit((1 - e) * unit([-s * 0.25, 0.85, 0.45]) + e * straight)
            guard, rest = arm(side, upper, fore), hanging_arm(side, np.zeros(n), self.arm_bend)
            for j in guard:
                parts[j] = _slerp_matrices(rest[j], guard[j], guard_on)
        # the pelvis is bladed 0.3 rad to the right; the spine turns the chest back by 0.3 + twist
        parts |= torso(0.05, yaw=(twist + 0.3) * guard_on, head_yaw=-twist * guard_on * 0.8,
                       head_pitch=0.05, n=n)
        return parts


def _slerp_matrices(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    return quat_to_matrix(quat_slerp(matrix_to_quat(a), matrix_to_quat(b), w[:, None]))


KINDS = {"idle": Idle, "walk": Walk, "run": Walk, "turn": Turn, "wave": Wave, "squat": Squat, "jump": Jump,
         "dance": Dance, "boxing": Boxing}


def build(req: Request, rng: np.random.Generator) -> Primitive:
    return KINDS[req.kind](req, rng)
