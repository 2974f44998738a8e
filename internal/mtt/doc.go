// Package mtt writes hazmon's data as the regulator's text files of
// MT/T 1201.1-2023 (coal-mine sensing data networking, part 1: safety
// monitoring) and pushes them by SFTP to the regulator's front-end host.
//
// What is known of the layout comes from the networking notes: the text
// of the standard was not available, and the layout, the file kinds and
// the code tables are reconstructed from independent public uploaders that
// agree with each other (confidence S). Parts with no agreeing source at
// all are marked U in the comments and kept as data the site can override
// (Codes, config uplinks[].codes).
//
// The pieces, each usable alone:
//   - the format: Encoder writes the four file kinds (CDDY point
//     definitions, CDSS real-time values, YCBJ abnormal records, TJSJ
//     statistics) from the small domain structs Point, Value, Abnormal and
//     Stat; Parse and ParseName read them back;
//   - the code tables: Codes maps hazmon's statuses, fault codes, alarm
//     levels and sensor types to the regulator's codes;
//   - the spool: Spool keeps each file (written atomically) until its
//     upload is confirmed, bounded, dropping the oldest real-time files
//     first and never point definitions or abnormal records;
//   - the pusher: SFTP uploads a file under a temporary name and renames it
//     into place, over SSH with key authentication and a verified host key;
//   - the exporter: Exporter takes the inputs (non-blocking), writes the
//     files on its cadence and pushes the spool with back-off, on goroutines
//     that Run owns.
package mtt
