"""Sprints: a team's short push on its key results, with a commitment, a review and a retrospective."""
