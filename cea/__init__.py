"""cea: cost-effectiveness of immunoglobulin replacement with bispecific antibodies in myeloma."""
