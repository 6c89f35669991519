-- lease_tokens with a reserve: a caller passing p_reserve > 0 is granted at most the
-- window's limit minus p_reserve, so bulk work (a full sync spending whole windows at once)
-- always leaves room for callers that must not wait a whole window behind it. The
-- 15-argument version stays for processes not yet upgraded; it reserves nothing.
CREATE FUNCTION lease_tokens(
    p_portal BIGINT,
    p_kind TEXT,
    p_limit INTEGER,
    p_window_ms INTEGER,
    p_want INTEGER,
    p_return_id BIGINT,
    p_return_tokens INTEGER,
    p_obs_max INTEGER,
    p_obs_remaining INTEGER,
    p_obs_lookback_ms INTEGER,
    p_obs_tolerance INTEGER,
    p_daily_limit BIGINT,
    p_daily_remaining BIGINT,
    p_day_offset_minutes INTEGER,
    p_pace_slices INTEGER,
    p_reserve INTEGER
) RETURNS TABLE (granted INTEGER, grant_id BIGINT, wait_ms INTEGER, daily_until TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
DECLARE
    v_now TIMESTAMPTZ;
    v_budget budgets%ROWTYPE;
    v_daily daily_quotas%ROWTYPE;
    v_window INTERVAL := make_interval(secs => p_window_ms / 1000.0);
    v_offset INTERVAL := make_interval(mins => p_day_offset_minutes);
    v_limit INTEGER;
    v_used INTEGER;
    v_believed INTEGER;
    v_external INTEGER;
    v_grant INTEGER;
    v_id BIGINT;
    v_free_at TIMESTAMPTZ;
    v_pace INTERVAL := make_interval(secs => p_window_ms / 1000.0 / GREATEST(p_pace_slices, 1));
    v_pace_limit INTEGER;
    v_pace_used INTEGER;
    v_free INTEGER;
    v_wait_ms INTEGER := 0;
BEGIN
    INSERT INTO budgets (portal_id, kind) VALUES (p_portal, p_kind) ON CONFLICT DO NOTHING;
    SELECT * INTO v_budget FROM budgets WHERE portal_id = p_portal AND kind = p_kind FOR UPDATE;
    -- Read the clock after the lock: time spent waiting for it must not age the window.
    v_now := clock_timestamp();

    IF p_return_id IS NOT NULL AND p_return_tokens > 0 THEN
        UPDATE grants SET tokens = GREATEST(tokens - p_return_tokens, 0) WHERE id = p_return_id;
        IF p_daily_limit IS NOT NULL THEN
            UPDATE daily_quotas SET used = GREATEST(used - p_return_tokens, 0) WHERE portal_id = p_portal;
        END IF;
    END IF;

    IF p_obs_max IS NOT NULL AND p_obs_remaining IS NOT NULL THEN
        -- Everything we granted that can have reached HubSpot's window at the observation.
        SELECT COALESCE(SUM(tokens), 0) INTO v_believed FROM grants
         WHERE portal_id = p_portal AND kind = p_kind
           AND granted_at > v_now - make_interval(secs => p_obs_lookback_ms / 1000.0);
        v_external := (p_obs_max - p_obs_remaining) - v_believed;
        IF v_external > p_obs_tolerance THEN
            v_budget.reduced_limit := GREATEST(LEAST(p_limit, p_obs_max) - v_external, 1);
            v_budget.reduced_until := v_now + v_window;
        ELSIF p_obs_max < p_limit THEN
            -- HubSpot says the portal's limit is lower than configured (tier changed).
            v_budget.reduced_limit := p_obs_max;
            v_budget.reduced_until := v_now + interval '1 hour';
        END IF;
        UPDATE budgets SET reduced_limit = v_budget.reduced_limit, reduced_until = v_budget.reduced_until,
               updated_at = v_now
         WHERE portal_id = p_portal AND kind = p_kind;
    END IF;

    IF v_budget.paused_until IS NOT NULL AND v_budget.paused_until > v_now THEN
        RETURN QUERY SELECT 0, NULL::BIGINT,
            GREATEST(CEIL(EXTRACT(EPOCH FROM (v_budget.paused_until - v_now)) * 1000)::INTEGER, 1),
            NULL::TIMESTAMPTZ;
        RETURN;
    END IF;

    v_limit := p_limit;
    IF v_budget.reduced_until IS NOT NULL AND v_budget.reduced_until > v_now THEN
        v_limit := LEAST(v_limit, GREATEST(v_budget.reduced_limit, 1));
    END IF;
    -- A caller with a reserve (a sync run) leaves that many tokens of every window to
    -- callers without one (webhook reads, writeback), however much it wants.
    v_limit := GREATEST(v_limit - GREATEST(p_reserve, 0), 1);

    IF p_daily_limit IS NOT NULL THEN
        INSERT INTO daily_quotas (portal_id, daily_limit, period_ends_at)
        VALUES (p_portal, p_daily_limit, date_trunc('day', v_now + v_offset) + interval '1 day' - v_offset)
        ON CONFLICT DO NOTHING;
        SELECT * INTO v_daily FROM daily_quotas WHERE portal_id = p_portal FOR UPDATE;
        IF v_daily.period_ends_at <= v_now THEN
            v_daily.used := 0;
            v_daily.exhausted_until := NULL;
            v_daily.period_ends_at := date_trunc('day', v_now + v_offset) + interval '1 day' - v_offset;
        END IF;
        v_daily.daily_limit := p_daily_limit;
        IF p_daily_remaining IS NOT NULL THEN
            v_daily.used := GREATEST(v_daily.used, v_daily.daily_limit - p_daily_remaining);
        END IF;
        UPDATE daily_quotas SET daily_limit = v_daily.daily_limit, used = v_daily.used,
               period_ends_at = v_daily.period_ends_at, exhausted_until = v_daily.exhausted_until
         WHERE portal_id = p_portal;
        IF (v_daily.exhausted_until IS NOT NULL AND v_daily.exhausted_until > v_now)
           OR v_daily.used >= v_daily.daily_limit THEN
            RETURN QUERY SELECT 0, NULL::BIGINT, NULL::INTEGER,
                COALESCE(v_daily.exhausted_until, v_daily.period_ends_at);
            RETURN;
        END IF;
    END IF;

    SELECT COALESCE(SUM(tokens), 0) INTO v_used FROM grants
     WHERE portal_id = p_portal AND kind = p_kind AND granted_at > v_now - v_window;
    -- Pacing: the window's limit spread over its slices, so steady demand is served evenly
    -- instead of in one burst per window followed by silence.
    v_pace_limit := CEIL(v_limit::NUMERIC / GREATEST(p_pace_slices, 1))::INTEGER;
    SELECT COALESCE(SUM(tokens), 0) INTO v_pace_used FROM grants
     WHERE portal_id = p_portal AND kind = p_kind AND granted_at > v_now - v_pace;
    v_free := LEAST(v_limit - v_used, v_pace_limit - v_pace_used);

    IF v_free > 0 THEN
        v_grant := LEAST(p_want, v_free);
        IF p_daily_limit IS NOT NULL THEN
            v_grant := LEAST(v_grant, v_daily.daily_limit - v_daily.used);
            UPDATE daily_quotas SET used = used + v_grant WHERE portal_id = p_portal;
        END IF;
        INSERT INTO grants (portal_id, kind, granted_at, tokens)
        VALUES (p_portal, p_kind, v_now, v_grant) RETURNING id INTO v_id;
        -- Keep the table small: nothing older than a minute is ever summed.
        DELETE FROM grants WHERE portal_id = p_portal AND kind = p_kind
           AND granted_at < v_now - interval '1 minute';
        RETURN QUERY SELECT v_grant, v_id, 0, NULL::TIMESTAMPTZ;
        RETURN;
    END IF;

    -- The earliest instant at which enough old grants leave each full span to free a token.
    IF v_used >= v_limit THEN
        v_free_at := budget_free_at(p_portal, p_kind, v_now - v_window, v_used - v_limit);
        v_wait_ms := GREATEST(v_wait_ms,
            COALESCE(CEIL(EXTRACT(EPOCH FROM (v_free_at + v_window - v_now)) * 1000)::INTEGER, 100));
    END IF;
    IF v_pace_used >= v_pace_limit THEN
        v_free_at := budget_free_at(p_portal, p_kind, v_now - v_pace, v_pace_used - v_pace_limit);
        v_wait_ms := GREATEST(v_wait_ms,
            COALESCE(CEIL(EXTRACT(EPOCH FROM (v_free_at + v_pace - v_now)) * 1000)::INTEGER, 10));
    END IF;
    RETURN QUERY SELECT 0, NULL::BIGINT, GREATEST(v_wait_ms, 1), NULL::TIMESTAMPTZ;
END;
$$;
