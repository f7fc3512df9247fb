// okrsync OKRs: the card's view (OkrsyncCard.jsx registers it with HubSpot; the tests render it directly).
//
// The view asks the okrsync sidecar for this record's OKR view with hubspot.fetch(). HubSpot signs the request
// with the app's client secret (X-HubSpot-Signature-v3); the sidecar verifies it, so the card sends no secret
// and no custom header (app cards cannot). The JSON it receives is documented in ../../../README.md.
// Words follow the HubSpot user's language (context.user.locale): German or English; the sidecar is asked for
// its hygiene sentences in the same language (lang=de|en).
import React, { useCallback, useEffect, useState } from 'react';
import {
  Button,
  Divider,
  EmptyState,
  ErrorState,
  Flex,
  Heading,
  Link,
  LoadingSpinner,
  ProgressBar,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableHeader,
  TableRow,
  Tag,
  Text,
  hubspot,
} from '@hubspot/ui-extensions';
import config from './okrsync.config.json';

// okrsync's public HTTPS URL, from okrsync.config.json (the same origin must be in permittedUrls.fetch of
// app-hsmeta.json: tests/deploy/test_ui_components.py checks that they agree)
export const OKRSYNC_URL = String(config.okrsyncUrl || '').replace(/\/+$/, '');
const CARD_PATH = '/api/v1/hubspot/card';
const TIMEOUT_MS = 10000;

// context.crm.objectTypeId of the records this card is configured for (objectTypes in okrsync-card-hsmeta.json)
const OBJECT_TYPES = { '0-3': 'deals', '0-2': 'companies' };

export const WORDS = {
  en: {
    loading: 'Loading OKRs from okrsync',
    loadFailed: "Couldn't load okrsync OKRs.",
    tryAgain: 'Try again',
    onlyDealsAndCompanies: 'This card works on deal and company records only.',
    unreachable: 'okrsync could not be reached ({reason}).',
    refused:
      "okrsync refused the request: check that okrsync has this app's client secret (OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET) and its public URL (OKRSYNC_WEBHOOKS__PUBLIC_BASE_URL).",
    unknownRecord: 'okrsync does not know this record yet: it appears after the next sync.',
    notSetUp:
      'okrsync is not set up for this HubSpot app yet: set OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET and restart it.',
    tooMany: 'Too many requests at once: try again in a moment.',
    httpStatus: 'okrsync answered with HTTP {status}.',
    deal: 'deal',
    company: 'company',
    noKeyResultsTitle: 'No key result counts this record yet',
    noKeyResults: 'When the activities or pipeline of this {noun} count toward a key result, okrsync shows it here.',
    keyResultsHeading: 'Key results this {noun} counts toward',
    ofTarget: '{percent} of target',
    valueOfTarget: '({value} of {target})',
    expectedByNow: 'expected {percent} by now',
    onPace: 'on pace',
    ahead: '{points} points ahead of pace',
    aheadOne: '1 point ahead of pace',
    behind: '{points} points behind pace',
    behindOne: '1 point behind pace',
    recordsCounted: '{count} records counted',
    recordCounted: '1 record counted',
    value: 'value {value}',
    teamProgress: 'Team progress',
    team: 'Team',
    added: 'This {noun} added',
    openDashboard: 'Open in the okrsync dashboard',
    pipelineHygiene: 'Pipeline hygiene',
    notChecked: 'okrsync has not checked this deal yet.',
    rulesPassed: 'Hygiene rules passed',
    noHygieneProblems: 'No hygiene problems found.',
    checked: 'Checked {when}',
    kamHeading: 'Key-account criteria',
    noKam: 'okrsync has no key-account criteria for this company yet.',
    kamScore: 'Key-account score {percent}',
    criterion: 'Criterion',
    status: 'Status',
    source: 'Source',
    comment: 'Comment',
    unknown: 'Unknown',
    status_on_track: 'On track',
    status_achieved: 'Achieved',
    status_missed: 'Missed',
    status_at_risk: 'At risk',
    status_off_track: 'Off track',
    status_too_early: 'Too early to tell',
    status_not_started: 'Not started',
    status_no_data: 'No data yet',
    kam_met: 'Met',
    kam_partly: 'Partly met',
    kam_not_met: 'Not met',
    kam_not_assessed: 'Not assessed',
  },
  de: {
    loading: 'OKRs werden von okrsync geladen',
    loadFailed: 'Die okrsync-OKRs konnten nicht geladen werden.',
    tryAgain: 'Erneut versuchen',
    onlyDealsAndCompanies: 'Diese Karte funktioniert nur auf Deals und Unternehmen.',
    unreachable: 'okrsync ist nicht erreichbar ({reason}).',
    refused:
      'okrsync hat die Anfrage abgelehnt: Prüfen Sie, ob okrsync das Client Secret dieser App (OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET) und seine öffentliche URL (OKRSYNC_WEBHOOKS__PUBLIC_BASE_URL) kennt.',
    unknownRecord: 'okrsync kennt diesen Datensatz noch nicht: Er erscheint nach der nächsten Synchronisierung.',
    notSetUp:
      'okrsync ist für diese HubSpot-App noch nicht eingerichtet: Setzen Sie OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET und starten Sie okrsync neu.',
    tooMany: 'Zu viele Anfragen auf einmal: Versuchen Sie es gleich noch einmal.',
    httpStatus: 'okrsync antwortete mit HTTP {status}.',
    deal: 'Deal',
    company: 'Unternehmen',
    noKeyResultsTitle: 'Dieser Datensatz zählt noch für kein Key Result',
    noKeyResults: 'Sobald Aktivitäten oder Pipeline dieses Datensatzes ({noun}) für ein Key Result zählen, zeigt okrsync es hier.',
    keyResultsHeading: 'Key Results, für die dieser Datensatz ({noun}) zählt',
    ofTarget: '{percent} des Ziels',
    valueOfTarget: '({value} von {target})',
    expectedByNow: 'Soll bis heute {percent}',
    onPace: 'im Soll',
    ahead: '{points} Punkte vor dem Soll',
    aheadOne: '1 Punkt vor dem Soll',
    behind: '{points} Punkte hinter dem Soll',
    behindOne: '1 Punkt hinter dem Soll',
    recordsCounted: '{count} Datensätze gezählt',
    recordCounted: '1 Datensatz gezählt',
    value: 'Wert {value}',
    teamProgress: 'Fortschritt des Teams',
    team: 'Team',
    added: 'Beitrag dieses Datensatzes ({noun})',
    openDashboard: 'Im okrsync-Dashboard öffnen',
    pipelineHygiene: 'Pipeline-Hygiene',
    notChecked: 'okrsync hat diesen Deal noch nicht geprüft.',
    rulesPassed: 'Erfüllte Hygiene-Regeln',
    noHygieneProblems: 'Keine Hygiene-Probleme gefunden.',
    checked: 'Geprüft {when}',
    kamHeading: 'Key-Account-Kriterien',
    noKam: 'okrsync hat für dieses Unternehmen noch keine Key-Account-Kriterien.',
    kamScore: 'Key-Account-Score {percent}',
    criterion: 'Kriterium',
    status: 'Status',
    source: 'Quelle',
    comment: 'Kommentar',
    unknown: 'Unbekannt',
    status_on_track: 'Im Plan',
    status_achieved: 'Erreicht',
    status_missed: 'Verfehlt',
    status_at_risk: 'Gefährdet',
    status_off_track: 'Nicht im Plan',
    status_too_early: 'Noch zu früh',
    status_not_started: 'Nicht begonnen',
    status_no_data: 'Noch keine Daten',
    kam_met: 'Erfüllt',
    kam_partly: 'Teilweise erfüllt',
    kam_not_met: 'Nicht erfüllt',
    kam_not_assessed: 'Nicht bewertet',
  },
};

// The HubSpot user's language ("de", "de-de", "en-us"…): German or English
export const languageOf = (locale) => (String(locale || 'en').toLowerCase().startsWith('de') ? 'de' : 'en');

export const translator = (lang) => {
  const words = WORDS[lang] || WORDS.en;
  return (key, values = {}) =>
    words[key].replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
};

const TAGS = { on_track: 'success', achieved: 'success', at_risk: 'warning', off_track: 'error', missed: 'error' };
const BARS = { on_track: 'success', achieved: 'success', at_risk: 'warning', off_track: 'danger', missed: 'danger' };
const KAM_TAGS = { met: 'success', partly: 'warning', not_met: 'error' };

const isBlank = (value) => value === null || value === undefined || value === '';

// Fractions (0-1) as whole percentages
const percent = (fraction) => (isBlank(fraction) ? null : Math.round(Number(fraction) * 100));

const numberText = (lang, value) =>
  isBlank(value) ? '' : Number(value).toLocaleString(lang, { maximumFractionDigits: 2 });

const percentText = (lang, fraction) => {
  if (isBlank(fraction)) {
    return '—';
  }
  return lang === 'de' ? `${percent(fraction)} %` : `${percent(fraction)}%`;
};

const statusOf = (t, prefix, tags, status) => {
  const key = `${prefix}_${status}`;
  const known = !isBlank(status) && key in WORDS.en;
  return {
    label: known ? t(key) : isBlank(status) ? t('unknown') : String(status).replace(/_/g, ' '),
    tag: tags[status] || 'default',
    bar: BARS[status] || 'success',
  };
};

const paceText = (t, progress, expected) => {
  if (isBlank(progress) || isBlank(expected)) {
    return '';
  }
  const gap = percent(progress) - percent(expected);
  if (gap === 0) {
    return t('onPace');
  }
  if (gap > 0) {
    return gap === 1 ? t('aheadOne') : t('ahead', { points: gap });
  }
  return gap === -1 ? t('behindOne') : t('behind', { points: -gap });
};

const explain = (t, status) => {
  if (status === 401 || status === 403) {
    return t('refused');
  }
  if (status === 404) {
    return t('unknownRecord');
  }
  if (status === 503) {
    return t('notSetUp');
  }
  if (status === 429) {
    return t('tooMany');
  }
  return t('httpStatus', { status });
};

// fetchJson: hubspot.fetch in HubSpot; the tests pass their own
export const OkrsyncCard = ({ context, fetchJson = hubspot.fetch }) => {
  const objectType = OBJECT_TYPES[String(context.crm.objectTypeId)];
  const objectId = context.crm.objectId;
  const lang = languageOf(context.user && (context.user.language || context.user.locale));
  const t = translator(lang);
  const [state, setState] = useState({ status: 'loading' });

  const load = useCallback(async () => {
    const say = translator(lang);
    if (!objectType) {
      setState({ status: 'error', message: say('onlyDealsAndCompanies') });
      return;
    }
    setState({ status: 'loading' });
    try {
      const query = `objectType=${objectType}&objectId=${encodeURIComponent(String(objectId))}&lang=${lang}`;
      const response = await fetchJson(`${OKRSYNC_URL}${CARD_PATH}?${query}`, { method: 'GET', timeout: TIMEOUT_MS });
      if (!response.ok) {
        setState({ status: 'error', message: explain(say, response.status) });
        return;
      }
      setState({ status: 'ready', data: await response.json() });
    } catch (error) {
      const reason = error && error.message ? error.message : String(error);
      setState({ status: 'error', message: say('unreachable', { reason }) });
    }
  }, [objectType, objectId, lang, fetchJson]);

  useEffect(() => {
    load();
  }, [load]);

  if (state.status === 'loading') {
    return <LoadingSpinner label={t('loading')} showLabel={true} layout="centered" />;
  }
  if (state.status === 'error') {
    return (
      <ErrorState title={t('loadFailed')}>
        <Text>{state.message}</Text>
        <Button onClick={load}>{t('tryAgain')}</Button>
      </ErrorState>
    );
  }
  const data = state.data || {};
  const noun = objectType === 'deals' ? t('deal') : t('company');
  return (
    <Flex direction="column" gap="md">
      {objectType === 'deals' && <Hygiene t={t} lang={lang} hygiene={data.hygiene} />}
      {objectType === 'deals' && <Divider />}
      <KeyResults t={t} lang={lang} keyResults={data.keyResults || []} noun={noun} />
      {objectType === 'companies' && <Divider />}
      {objectType === 'companies' && <Kam t={t} lang={lang} kam={data.kam} />}
    </Flex>
  );
};

const KeyResults = ({ t, lang, keyResults, noun }) => {
  if (keyResults.length === 0) {
    return (
      <EmptyState title={t('noKeyResultsTitle')} layout="vertical" flush={true}>
        <Text>{t('noKeyResults', { noun })}</Text>
      </EmptyState>
    );
  }
  return (
    <Flex direction="column" gap="sm">
      <Heading>{t('keyResultsHeading', { noun })}</Heading>
      {keyResults.map((kr, index) => (
        <KeyResult key={`${kr.title}-${kr.team}-${index}`} t={t} lang={lang} kr={kr} noun={noun} />
      ))}
    </Flex>
  );
};

const KeyResult = ({ t, lang, kr, noun }) => {
  const status = statusOf(t, 'status', TAGS, kr.status);
  const contributed = kr.contributed || {};
  const team = [t('ofTarget', { percent: percentText(lang, kr.progress) })];
  if (!isBlank(kr.value) && !isBlank(kr.target)) {
    team.push(t('valueOfTarget', { value: numberText(lang, kr.value), target: numberText(lang, kr.target) }));
  }
  const teamLine = [team.join(' ')];
  if (!isBlank(kr.expected)) {
    teamLine.push(t('expectedByNow', { percent: percentText(lang, kr.expected) }));
  }
  const pace = paceText(t, kr.progress, kr.expected);
  if (pace) {
    teamLine.push(pace);
  }
  const records = Number(contributed.records || 0);
  const added = [records === 1 ? t('recordCounted') : t('recordsCounted', { count: numberText(lang, records) })];
  if (!isBlank(contributed.value)) {
    added.push(t('value', { value: numberText(lang, contributed.value) }));
  }
  return (
    <Flex direction="column" gap="xs">
      <Flex direction="row" justify="between" align="center" gap="sm">
        <Text format={{ fontWeight: 'bold' }}>{kr.title}</Text>
        <Tag variant={status.tag}>{status.label}</Tag>
      </Flex>
      {!isBlank(kr.team) && <Text variant="microcopy">{kr.team}</Text>}
      <ProgressBar
        title={t('teamProgress')}
        value={Math.max(0, Math.min(100, percent(kr.progress) || 0))}
        maxValue={100}
        showPercentage={true}
        valueDescription={
          isBlank(kr.expected) ? undefined : t('expectedByNow', { percent: percentText(lang, kr.expected) })
        }
        variant={status.bar}
      />
      <Text variant="microcopy">{`${t('team')}: ${teamLine.join(' · ')}`}</Text>
      <Text>{`${t('added', { noun })}: ${added.join(' · ')}`}</Text>
      {!isBlank(contributed.summary) && <Text variant="microcopy">{contributed.summary}</Text>}
      {!isBlank(kr.dashboardUrl) && (
        <Link href={{ url: kr.dashboardUrl, external: true }}>{t('openDashboard')}</Link>
      )}
    </Flex>
  );
};

const Hygiene = ({ t, lang, hygiene }) => {
  if (!hygiene || isBlank(hygiene.checked)) {
    return (
      <Flex direction="column" gap="xs">
        <Heading>{t('pipelineHygiene')}</Heading>
        <Text>{t('notChecked')}</Text>
      </Flex>
    );
  }
  const issues = hygiene.issues || [];
  const score = percent(hygiene.score);
  return (
    <Flex direction="column" gap="xs">
      <Heading>{t('pipelineHygiene')}</Heading>
      {score !== null && (
        <ProgressBar
          title={t('rulesPassed')}
          value={Math.max(0, Math.min(100, score))}
          maxValue={100}
          showPercentage={true}
          variant={score >= 80 ? 'success' : score >= 50 ? 'warning' : 'danger'}
        />
      )}
      {issues.length === 0 ? (
        <Text>{t('noHygieneProblems')}</Text>
      ) : (
        issues.map((issue, index) => <Text key={`${index}`}>{`• ${issue}`}</Text>)
      )}
      <Text variant="microcopy">{t('checked', { when: new Date(hygiene.checked).toLocaleString(lang) })}</Text>
    </Flex>
  );
};

const Kam = ({ t, lang, kam }) => {
  const criteria = (kam && kam.criteria) || [];
  if (criteria.length === 0) {
    return (
      <Flex direction="column" gap="xs">
        <Heading>{t('kamHeading')}</Heading>
        <Text>{t('noKam')}</Text>
      </Flex>
    );
  }
  return (
    <Flex direction="column" gap="xs">
      <Heading>{t('kamHeading')}</Heading>
      {!isBlank(kam.score) && <Text>{t('kamScore', { percent: percentText(lang, kam.score) })}</Text>}
      <Table bordered={true} flush={true}>
        <TableHead>
          <TableRow>
            <TableHeader>{t('criterion')}</TableHeader>
            <TableHeader>{t('status')}</TableHeader>
            <TableHeader>{t('source')}</TableHeader>
            <TableHeader>{t('comment')}</TableHeader>
          </TableRow>
        </TableHead>
        <TableBody>
          {criteria.map((criterion, index) => {
            const status = statusOf(t, 'kam', KAM_TAGS, criterion.status);
            return (
              <TableRow key={`${criterion.title}-${index}`}>
                <TableCell>{criterion.title}</TableCell>
                <TableCell>
                  <Tag variant={status.tag}>{status.label}</Tag>
                </TableCell>
                <TableCell>{criterion.source || ''}</TableCell>
                <TableCell>{criterion.comment || ''}</TableCell>
              </TableRow>
            );
          })}
        </TableBody>
      </Table>
    </Flex>
  );
};
