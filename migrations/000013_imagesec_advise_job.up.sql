-- Advise as a job (issue 7): POST /v1/images/{id}/advise answers 202 with
-- a job like the other actions, since reading a fix feed over HTTP takes
-- as long as the network does.
ALTER TABLE imagesec_jobs DROP CONSTRAINT imagesec_jobs_kind_check;
ALTER TABLE imagesec_jobs ADD CONSTRAINT imagesec_jobs_kind_check
    CHECK (kind IN ('collect', 'inspect', 'advise', 'upgrade', 'publish'));
