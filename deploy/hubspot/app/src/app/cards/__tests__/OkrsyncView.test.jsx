// The card's view rendered with HubSpot's own testing utilities (@hubspot/ui-extensions/testing): what a rep sees on
// a deal and on a company, in English and in German, and what the card asks okrsync for.
import React from 'react';
import { describe, expect, it } from 'vitest';
import { ErrorState, Link, Tag, Text } from '@hubspot/ui-extensions';
import { createRenderer } from '@hubspot/ui-extensions/testing';
import { OKRSYNC_URL, OkrsyncCard, WORDS } from '../OkrsyncView.jsx';

const DEAL = {
  record: { objectType: 'deals', objectId: '9001', name: 'Lumen Energie 29 - Expansion' },
  keyResults: [
    {
      title: '€6M new pipeline created', team: 'Vertrieb DACH', progress: 0.45, expected: 0.5, status: 'on_track',
      value: 2700000, target: 6000000, contributed: { records: 1, value: 401500, summary: '1 counted from this record' },
      dashboardUrl: 'https://okrsync.example.com/dashboard/1/kr/new-pipeline',
    },
    {
      title: '150 outbound calls in sprint 1', team: 'Vertrieb DACH', progress: 0.75, expected: 1, status: 'missed',
      value: 113, target: 150, contributed: { records: 3, value: null, summary: null }, dashboardUrl: null,
    },
  ],
  hygiene: { score: 0.6, issues: ['Kein nächster Schritt'], checked: '2026-12-04T18:00:00Z' },
  kam: null,
};

function answer(body, status = 200) {
  return { ok: status < 400, status, json: async () => body };
}

function show(locale, body, { objectTypeId = '0-3', status = 200 } = {}) {
  const asked = [];
  const fetchJson = async (url, options) => {
    asked.push({ url, options });
    return answer(body, status);
  };
  const renderer = createRenderer('crm.record.tab');
  const context = { ...renderer.mocks.context, user: { locale, language: locale }, crm: { objectId: 9001, objectTypeId } };
  renderer.render(<OkrsyncCard context={context} fetchJson={fetchJson} />);
  return { renderer, asked };
}

const texts = (renderer) => renderer.findAll(Text).map((node) => node.text);

describe('the okrsync card on a deal', () => {
  it('shows each key result, its status in words, the pace and a link to its dashboard page', async () => {
    const { renderer, asked } = show('en-us', DEAL);
    await renderer.waitFor(() => expect(renderer.findAll(Tag).length).toBe(2));
    expect(asked).toHaveLength(1);
    expect(asked[0].url).toBe(`${OKRSYNC_URL}/api/v1/hubspot/card?objectType=deals&objectId=9001&lang=en`);
    expect(renderer.findAll(Tag).map((tag) => tag.text)).toEqual(['On track', 'Missed']);
    const all = texts(renderer);
    expect(all).toContain('Team: 45% of target (2,700,000 of 6,000,000) · expected 50% by now · 5 points behind pace');
    expect(all).toContain('This deal added: 1 record counted · value 401,500');
    expect(all).toContain('• Kein nächster Schritt');
    const links = renderer.findAll(Link);
    expect(links).toHaveLength(1); // the sprint's key result has no dashboard URL: no link
    expect(links[0].props.href).toEqual({ url: 'https://okrsync.example.com/dashboard/1/kr/new-pipeline', external: true });
    expect(links[0].text).toBe('Open in the okrsync dashboard');
  });

  it('speaks German to a German user and asks okrsync for German sentences', async () => {
    const { renderer, asked } = show('de-de', DEAL);
    await renderer.waitFor(() => expect(renderer.findAll(Tag).length).toBe(2));
    expect(asked[0].url).toContain('&lang=de');
    expect(renderer.findAll(Tag).map((tag) => tag.text)).toEqual(['Im Plan', 'Verfehlt']);
    const all = texts(renderer).join('\n');
    expect(all).toContain('Team: 45 % des Ziels (2.700.000 von 6.000.000) · Soll bis heute 50 % · 5 Punkte hinter dem Soll');
    expect(all).toContain('Beitrag dieses Datensatzes (Deal): 1 Datensatz gezählt · Wert 401.500');
    expect(renderer.find(Link).text).toBe('Im okrsync-Dashboard öffnen');
    for (const english of ['of target', 'behind pace', 'record counted', 'Open in the okrsync dashboard']) {
      expect(all).not.toContain(english);
    }
  });

  it('says what to do when okrsync refuses, in the user language', async () => {
    const { renderer } = show('de', {}, { status: 503 });
    await renderer.waitFor(() => expect(renderer.maybeFind(ErrorState)).not.toBeNull());
    expect(renderer.find(ErrorState).props.title).toBe(WORDS.de.loadFailed);
    expect(texts(renderer)).toContain(WORDS.de.notSetUp);
  });
});

describe('the words', () => {
  it('exist in both languages with the same placeholders', () => {
    expect(Object.keys(WORDS.de).sort()).toEqual(Object.keys(WORDS.en).sort());
    const holes = (text) => (text.match(/\{\w+\}/g) || []).sort();
    for (const key of Object.keys(WORDS.en)) {
      expect(holes(WORDS.de[key]), key).toEqual(holes(WORDS.en[key]));
    }
  });
});
