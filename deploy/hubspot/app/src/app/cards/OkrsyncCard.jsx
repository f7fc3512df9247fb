// okrsync OKRs: an app card on deal and company records (the entrypoint in okrsync-card-hsmeta.json).
// The view lives in OkrsyncView.jsx, so that its tests render it without HubSpot around it.
import React from 'react';
import { hubspot } from '@hubspot/ui-extensions';
import { OkrsyncCard } from './OkrsyncView.jsx';

hubspot.extend(({ context, actions }) => <OkrsyncCard context={context} actions={actions} />);
