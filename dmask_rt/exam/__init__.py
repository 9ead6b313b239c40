"""The guided eye examination: fixation targets on the patient's screen, their calibration
and the per-step clinical figures (protocol -> geometry -> calibration -> analysis -> report).

- `protocol`: the steps (where the target is, for how long, what the patient is asked).
- `record`: the exam record the live side writes, read and checked.
- `geometry`: a target's place in the camera's frame and the eye angles that fixate it.
- `steps`: the param rows as columns, each step's latest done run and its status.
- `calibration`: the per-patient eye model, from the avatar's angle to the visual axis.
- `uncertainty`: Monte Carlo draws of the screen, camera, distance and each step's noise.
- `cover`, `lids`: cover-uncover and lid figures.
- `analysis.analyse(record, rows) -> dict`: everything above as plain JSON.
- `report.report_html(results, record) -> str`: the doctor's self-contained HTML page.
"""
