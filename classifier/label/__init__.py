"""Label: roles from measurements (section 4) and the sentence that describes a head."""
