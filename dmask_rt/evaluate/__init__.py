"""`dmask eval`: clinical fidelity and privacy of the mask, beside crop, blur and pixelation.

clinical.py   the primary figures: each eye's clinical readings (MRD, iris place, scleral
              show, closures, deviation in PD), original vs output, per frame
avatar_pixels.py  the avatar's eyes read from its pixels, confirming the drawn geometry
fidelity.py   readability: per-frame eye measures from re-tracked landmarks (original vs output)
privacy.py    dlib's ResNet as the attacker: identification, Mask2Mask, verification, detection
baselines.py  the usual alternatives the mask is compared with
runner.py     one pass over the videos that feeds all of the above
report.py     JSON, self-contained HTML and the headline table
"""
