//! `run`: a list of jobs spread over hosts with N slots each (being written).
