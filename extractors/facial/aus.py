"""The action units every facial backend writes, and how MediaPipe's blendshapes stand for them."""

from __future__ import annotations

AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14", "AU15",
       "AU17", "AU20", "AU23", "AU25", "AU26", "AU43")
# FACS action unit → the ARKit blendshapes whose mean stands for it (documented in the README).
BLENDSHAPE_AUS = {
    "AU01": ("browInnerUp",),  # inner brow raiser
    "AU02": ("browOuterUpLeft", "browOuterUpRight"),  # outer brow raiser
    "AU04": ("browDownLeft", "browDownRight"),  # brow lowerer
    "AU05": ("eyeWideLeft", "eyeWideRight"),  # upper lid raiser
    "AU06": ("cheekSquintLeft", "cheekSquintRight"),  # cheek raiser
    "AU07": ("eyeSquintLeft", "eyeSquintRight"),  # lid tightener
    "AU09": ("noseSneerLeft", "noseSneerRight"),  # nose wrinkler
    "AU10": ("mouthUpperUpLeft", "mouthUpperUpRight"),  # upper lip raiser
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),  # lip corner puller
    "AU14": ("mouthDimpleLeft", "mouthDimpleRight"),  # dimpler
    "AU15": ("mouthFrownLeft", "mouthFrownRight"),  # lip corner depressor
    "AU17": ("mouthShrugLower",),  # chin raiser
    "AU20": ("mouthStretchLeft", "mouthStretchRight"),  # lip stretcher
    "AU23": ("mouthPressLeft", "mouthPressRight"),  # lip tightener
    "AU25": ("mouthLowerDownLeft", "mouthLowerDownRight"),  # lips part
    "AU26": ("jawOpen",),  # jaw drop
    "AU43": ("eyeBlinkLeft", "eyeBlinkRight"),  # eyes closed
}
# MediaPipe's 52 blendshapes, in the order its blendshape model gives their scores.
BLENDSHAPES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight")
# The AUs that open the mouth: what follows the voice of the face that speaks.
MOUTH_AUS = ("AU25", "AU26")
