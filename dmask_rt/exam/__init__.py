"""The guided eye examination: fixation targets on the patient's screen, their calibration
and the per-step clinical figures (protocol -> geometry -> calibration -> analysis -> report)."""
