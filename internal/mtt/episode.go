package mtt

import "github.com/hazmon/hazmon/internal/safety"

// AbnormalFromEpisode fills an abnormal record from a cleared alarm's
// episode: the point's code, type name, place and unit, the abnormal type
// code (Codes.AbnormalType), start and end, and the extremes with their
// times and the mean when the episode had valid readings (else they are
// Unknown). Cause, Action, EnteredBy and the entry and data times are left
// to the caller (zero times become the upload time).
func AbnormalFromEpisode(p Point, abnormalType string, ep safety.Episode) Abnormal {
	a := Abnormal{
		Point: p.Code, TypeName: p.TypeName, Place: p.Place, Unit: p.Unit,
		Type: abnormalType, Start: ep.Start, End: ep.End,
	}
	if ep.Values > 0 {
		a.Max, a.MaxTime = Some(ep.Max), ep.MaxAt
		a.Min, a.MinTime = Some(ep.Min), ep.MinAt
		a.Mean = Some(ep.Mean())
	}
	return a
}
