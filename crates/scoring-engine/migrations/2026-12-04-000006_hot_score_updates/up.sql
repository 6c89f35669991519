-- A whole-org rescore rewrites nearly every score row of the org. Each rewrite of a row
-- whose score was in an index was a new tuple and an entry in each of its four indexes:
-- about 30 µs a row, most of a million-customer rescore's database time. Without an index
-- on the score, a rewrite that keeps the risk level (most of them) changes no indexed
-- column, and with room left on its page PostgreSQL does it in place (a HOT update: no
-- index entry at all). Measured on a copy of 1.1 million rows: 23 µs a row before, 12
-- after, with one in five rows changing its risk level.
--
-- What the score index served: `GET /api/v1/customers` sorts by `coalesce(score, -1)`,
-- which that index did not match, so sorting never used it; only a score-range filter
-- did, and it now reads the org's rows (or those of the risk levels asked for, whose
-- index stays).
--
-- Safe while the previous release runs: its queries do not name the index. The fillfactor
-- applies to pages written from now on.
DROP INDEX scores_org_score_idx;
ALTER TABLE scores SET (fillfactor = 60);
