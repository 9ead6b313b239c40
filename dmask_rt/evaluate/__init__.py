"""`dmask eval`: clinical fidelity and privacy of the mask, beside crop, blur and pixelation.

fidelity.py   per-frame eye measures from landmarks and their agreement (original vs output)
privacy.py    dlib's ResNet as the attacker: identification, Mask2Mask, verification, detection
baselines.py  the usual alternatives the mask is compared with
runner.py     one pass over the videos that feeds all of the above
report.py     JSON, self-contained HTML and the headline table
"""
